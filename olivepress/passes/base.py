"""The pass interface every optimization step implements."""

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from olivepress.config.base import ConfigModel
from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import ModelHandle, ModelKind


class PassConfig(ConfigModel):
    """Base of every pass's typed parameters. Unknown parameters are errors with a 'did you mean'."""

    # Fields that name an entry of the document's `data_configs`: the loader checks that the name exists,
    # and the engine puts that data's content fingerprint into the pass's cache key.
    data_config_fields: ClassVar[tuple[str, ...]] = ()
    # The values a search tries for a field when the document gives no list of its own and leaves the field
    # unset (engine.search_strategy.include_pass_params); each value must be valid for the field.
    search_defaults: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def data_config_names(self) -> dict[str, str]:
        """{field: data config name} for each data reference that is set."""
        return {name: value for name in self.data_config_fields if (value := getattr(self, name, None))}


@dataclass(frozen=True)
class PassContext:
    """What the engine hands a running pass."""

    output_dir: Path  # the only place the pass may write its result; empty when the pass starts
    scratch_dir: Path  # temporary files; deleted after the pass, whatever happens
    accelerator: Accelerator
    logger: logging.Logger
    data_configs: Mapping[str, DataConfig] = field(default_factory=dict)  # the document's data_configs by name
    metrics: dict[str, float] = field(default_factory=dict)  # filled by the pass (e.g. train_loss); kept in the footprint

    def data_config(self, name: str) -> DataConfig:
        try:
            return self.data_configs[name]
        except KeyError:
            raise OlivepressError(f"no data config named '{name}' in 'data_configs'") from None


ModelT = TypeVar("ModelT", bound=ModelHandle)
ConfigT = TypeVar("ConfigT", bound=PassConfig)


class Pass(ABC, Generic[ModelT, ConfigT]):
    """One optimization step: a model of an accepted kind in, a model of `produces` kind out.

    Subclasses name the model handle they take and their config class (`class LoRA(Pass[HfModel,
    LoRAConfig])`), set the class attributes and implement `run`. `version` is part of every cache key:
    bump it whenever a change to the pass could change its output.

    Lifecycle: the loader validates the document's parameters into `Config` (once, before anything runs).
    For each run the engine computes the cache key; on a miss it instantiates the class with no arguments
    and calls `run` once, on the system the document names, with an empty `context.output_dir` and
    `context.scratch_dir`. `run` writes only there, reports numbers in `context.metrics`, and returns the
    handle of what it wrote (or of its input's folders). A raised OlivepressError is bad input (exit 2);
    any other exception is a failed pass (exit 1). Nothing is published unless `run` returns.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # one line, shown by `olivepress passes`
    version: ClassVar[str] = "1"
    accepts: ClassVar[tuple[ModelKind, ...]]
    produces: ClassVar[ModelKind]
    Config: ClassVar[type[PassConfig]] = PassConfig

    @classmethod
    def accepted_kinds(cls, config: ConfigT) -> tuple[ModelKind, ...]:
        """The kinds of input model this pass takes with `config` (a subset of `accepts`)."""
        return cls.accepts

    @abstractmethod
    def run(self, model: ModelT, config: ConfigT, context: PassContext) -> ModelHandle:
        """Build the output model inside `context.output_dir` and return its handle."""
