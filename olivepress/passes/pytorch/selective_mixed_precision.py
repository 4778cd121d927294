"""SelectiveMixedPrecision: chooses which linears a following RTN or GPTQ pass quantizes at `high_bits`, and records
the choice in the model's config.json as `mixed_precision_info`, the model attribute in which Olive keeps it."""

import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from olivepress.files import copy_folder, link_or_copy, write_atomic
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.pytorch.quantize import (
    MIXED_PRECISION_KEY,
    calibration_rows,
    matmulnbits_block,
    model_dtype,
    tokenizer_kwargs,
)
from olivepress.quantization.formats import FORMAT_BITS
from olivepress.quantization.options import LEGACY_ALGORITHMS, SCORED_ALGORITHMS, MixedPrecisionOptions

Algorithm = Literal["high_precision_lm_head", "high_precision_mlp_down", "high_precision_mlp_down_qkv", "snr",
                    "snr_relative", "iqe", "iqe_relative", "kld_gradient"]
WRITABLE_BITS = FORMAT_BITS["gptq"]  # the following RTN or GPTQ pass writes a gptq checkpoint


class SelectiveMixedPrecisionConfig(PassConfig):
    data_config_fields = ("data_config",)

    algorithm: Algorithm = Field(
        description="high_precision_lm_head (the LM head), high_precision_mlp_down (also the down projections of the "
        "first and last eighth of the layers and every third between), high_precision_mlp_down_qkv (also their q/k/v); "
        "or by sensitivity score: snr, snr_relative, iqe, iqe_relative, kld_gradient. Olive's k_quant_last, "
        "k_quant_down and k_quant_mixed name the three heuristics.",
    )
    bits: int = Field(4, description="Bits of the layers left at the default precision.")
    group_size: int = Field(128, description="Their group size (scored algorithms); fitted to the model as RTN/GPTQ do.")
    sym: bool = Field(False, description="Their symmetric quantization (scored algorithms).")
    high_bits: int = Field(8, description="Bits of the chosen layers.")
    high_group_size: int | None = Field(None, description="Group size of the chosen layers (scored algorithms); "
                                        "default group_size.")
    high_sym: bool | None = Field(None, description="Symmetric quantization of the chosen layers (scored "
                                  "algorithms); default sym.")
    ratio: float | None = Field(None, gt=0, lt=1, description="Share of the linears' parameters left at bits; "
                                "required by the scored algorithms, which promote the most sensitive units until "
                                "1 - ratio of the parameters are at high_bits.")
    data_config: str | None = Field(None, description="kld_gradient's calibration text (a data_configs entry); "
                                    "default: the seed text shipped with olivepress.")
    num_samples: int = Field(256, ge=1, description="kld_gradient's rows (at most; Olive takes 256).")
    seq_len: int = Field(512, ge=1, description="Tokens per kld_gradient row (Olive takes 512).")

    @field_validator("algorithm", mode="before")
    @classmethod
    def _legacy_name(cls, value: Any) -> Any:
        return LEGACY_ALGORITHMS.get(value, value) if isinstance(value, str) else value

    @field_validator("bits", "high_bits")
    @classmethod
    def _bits_fit_the_format(cls, bits: int) -> int:
        if bits not in WRITABLE_BITS:
            raise ValueError(f"{bits} bits cannot be written: RTN and GPTQ write gptq checkpoints of "
                             f"{' or '.join(map(str, WRITABLE_BITS))}-bit weights")
        return bits

    @field_validator("group_size", "high_group_size")
    @classmethod
    def _group_size_fits_matmulnbits(cls, group_size: int | None) -> int | None:
        return None if group_size is None else matmulnbits_block(group_size)

    @model_validator(mode="after")
    def _scored_needs_ratio(self) -> "SelectiveMixedPrecisionConfig":
        if self.algorithm in SCORED_ALGORITHMS and self.ratio is None:
            raise ValueError(f"algorithm {self.algorithm} needs ratio, the share of parameters left at bits (0 < ratio < 1)")
        if self.high_bits <= self.bits:
            raise ValueError(f"high_bits {self.high_bits} must be more than bits {self.bits}")
        return self

    def options(self) -> MixedPrecisionOptions:
        return MixedPrecisionOptions(
            algorithm=self.algorithm, bits=self.bits, group_size=self.group_size, sym=self.sym, high_bits=self.high_bits,
            high_group_size=self.high_group_size or self.group_size,
            high_sym=self.sym if self.high_sym is None else self.high_sym, ratio=self.ratio)


class SelectiveMixedPrecision(Pass[HfModel, SelectiveMixedPrecisionConfig]):
    name = "SelectiveMixedPrecision"
    description = ("Chooses the linears that a following RTN or GPTQ pass quantizes at high_bits (Olive's algorithms); "
                   "writes the model folder with the choice in config.json (mixed_precision_info).")
    Config = SelectiveMixedPrecisionConfig
    accepts = ("hf",)
    produces = "hf"
    version = "1"

    def run(self, model: HfModel, config: SelectiveMixedPrecisionConfig, context: PassContext) -> HfModel:
        from olivepress.models.loading import load_causal_lm, load_tokenizer, read_model_config, without_dtype
        from olivepress.quantization.mixed_precision import choose_mixed_precision

        model_config = read_model_config(model.path)
        load_kwargs = without_dtype(model.load_kwargs)
        rows = None
        if config.algorithm == "kld_gradient":
            tokenizer = load_tokenizer(model.path, **tokenizer_kwargs(load_kwargs))
            rows = calibration_rows(config.data_config, config.num_samples, config.seq_len, context, tokenizer)
        torch_model = load_causal_lm(model.path, model_dtype(model.load_kwargs, model_config), **load_kwargs).eval()
        info = choose_mixed_precision(torch_model, config.options(), rows, context.logger)
        for entry in model.path.iterdir():
            if entry.is_dir():
                copy_folder(entry, context.output_dir / entry.name, link_files=True)
            elif entry.name != "config.json":
                link_or_copy(entry, context.output_dir / entry.name)
        text = json.dumps(model_config | {MIXED_PRECISION_KEY: info}, indent=2) + "\n"
        write_atomic(context.output_dir / "config.json", text)
        return HfModel(path=context.output_dir, task=model.task, load_kwargs=model.load_kwargs)
