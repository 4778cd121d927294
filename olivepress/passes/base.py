"""The pass interface every optimization step implements."""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from olivepress.config.base import ConfigModel
from olivepress.models.handles import ModelHandle, ModelKind


class PassConfig(ConfigModel):
    """Base of every pass's typed parameters. Unknown parameters are errors with a 'did you mean'."""


@dataclass(frozen=True)
class Accelerator:
    device: str  # cpu | gpu | npu
    execution_provider: str  # e.g. CPUExecutionProvider

    def as_dict(self) -> dict[str, str]:
        return {"device": self.device, "execution_provider": self.execution_provider}


@dataclass(frozen=True)
class PassContext:
    """What the engine hands a running pass."""

    output_dir: Path  # the only place the pass may write its result; empty when the pass starts
    scratch_dir: Path  # temporary files; deleted after the pass, whatever happens
    accelerator: Accelerator
    logger: logging.Logger


class Pass(ABC):
    """One optimization step: a model of an accepted kind in, a model of `produces` kind out.

    Subclasses set the class attributes and implement `run`. `version` is part of every cache key:
    bump it whenever a change to the pass could change its output.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # one line, shown by `olivepress passes`
    version: ClassVar[str] = "1"
    accepts: ClassVar[tuple[ModelKind, ...]]
    produces: ClassVar[ModelKind]
    Config: ClassVar[type[PassConfig]] = PassConfig

    @abstractmethod
    def run(self, model: ModelHandle, config: PassConfig, context: PassContext) -> ModelHandle:
        """Build the output model inside `context.output_dir` and return its handle."""
