"""What each quantizer takes. The values and their defaults are written once, in the pass configs
(olivepress.passes.pytorch.quantize), which build these; torch-free, so that those configs can import them."""

from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

from olivepress.quantization.formats import CHECKPOINT_FORMATS


@dataclass(frozen=True)
class ModuleOverride:
    """What one module quantizes with instead of the defaults (Olive's `overrides` entries); None keeps the default."""

    bits: int | None = None
    group_size: int | None = None
    sym: bool | None = None


@dataclass(frozen=True)
class QuantizeOptions:
    """What every quantizer shares."""

    algorithm: ClassVar[str]  # rtn | awq | gptq

    bits: int
    group_size: int  # as asked; `algorithms.plan` chooses the one that fits the model
    sym: bool
    modules_to_not_convert: tuple[str, ...]
    # by full module name; left out of the hash (a dict has none), kept in equality
    overrides: dict[str, ModuleOverride] = field(default_factory=dict, kw_only=True, hash=False)

    def for_module(self, name: str) -> "QuantizeOptions":
        """These options with the module's override applied (bits, group_size, sym)."""
        override = self.overrides.get(name)
        if override is None:
            return self
        changed = {key: value for key, value in vars(override).items() if value is not None}
        return replace(self, **changed)

    @property
    def fmt(self) -> str:
        return CHECKPOINT_FORMATS[self.algorithm]

    def algorithm_options(self) -> dict[str, object]:
        """The options this algorithm adds to the shared ones, in declaration order."""
        shared = {each.name for each in fields(QuantizeOptions)}
        return {each.name: getattr(self, each.name) for each in fields(self) if each.name not in shared}


@dataclass(frozen=True)
class RtnOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "rtn"


@dataclass(frozen=True)
class AwqOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "awq"

    n_grid: int
    duo_scaling: bool
    apply_clip: bool
    gptq_rounding: bool


@dataclass(frozen=True)
class GptqOptions(QuantizeOptions):
    algorithm: ClassVar[str] = "gptq"

    damp_percent: float
    desc_act: bool
    block_size: int
    apply_clip: bool


HEURISTIC_ALGORITHMS = ("high_precision_lm_head", "high_precision_mlp_down", "high_precision_mlp_down_qkv")
SCORED_ALGORITHMS = ("snr", "snr_relative", "iqe", "iqe_relative", "kld_gradient")
# Olive's older names of the heuristics, which it still accepts
LEGACY_ALGORITHMS = {"k_quant_last": "high_precision_lm_head", "k_quant_down": "high_precision_mlp_down",
                     "k_quant_mixed": "high_precision_mlp_down_qkv"}


@dataclass(frozen=True)
class MixedPrecisionOptions:
    """What SelectiveMixedPrecision takes (olivepress.passes.pytorch.selective_mixed_precision builds it)."""

    algorithm: str  # one of HEURISTIC_ALGORITHMS and SCORED_ALGORITHMS
    bits: int
    group_size: int
    sym: bool
    high_bits: int
    high_group_size: int
    high_sym: bool
    ratio: float | None  # the share of parameters left at `bits`; scored algorithms only
