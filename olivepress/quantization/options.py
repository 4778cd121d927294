"""What each quantizer takes. The values and their defaults are written once, in the pass configs
(olivepress.passes.pytorch.quantize), which build these; torch-free, so that those configs can import them."""

from dataclasses import dataclass, fields
from typing import ClassVar

from olivepress.quantization.formats import CHECKPOINT_FORMATS


@dataclass(frozen=True)
class QuantizeOptions:
    """What every quantizer shares."""

    algorithm: ClassVar[str]  # rtn | awq | gptq

    bits: int
    group_size: int  # as asked; `algorithms.plan` chooses the one that fits the model
    sym: bool
    modules_to_not_convert: tuple[str, ...]

    @property
    def fmt(self) -> str:
        return CHECKPOINT_FORMATS[self.algorithm]

    def algorithm_options(self) -> dict[str, object]:
        """The options this algorithm adds to the shared ones, in declaration order."""
        shared = {field.name for field in fields(QuantizeOptions)}
        return {field.name: getattr(self, field.name) for field in fields(self) if field.name not in shared}


@dataclass(frozen=True)
class RtnOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "rtn"


@dataclass(frozen=True)
class AwqOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "awq"

    n_grid: int
    duo_scaling: bool
    apply_clip: bool


@dataclass(frozen=True)
class GptqOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "gptq"

    damp_percent: float
    desc_act: bool
    block_size: int
    apply_clip: bool
