"""AWQ, GPTQ and RTN: int4/int8 weight quantization of a Hugging Face causal LM in torch, on CPU or CUDA,
into an awq/gptq checkpoint that the GenAI builder (ModelBuilder) ingests and olivepress loads back."""

import dataclasses
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from olivepress.config.base import ConfigModel
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.models.loading import stored_dtype
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.quantization.formats import CHECKPOINT_FORMATS, FORMAT_BITS
from olivepress.quantization.groups import MIN_GROUP_SIZE, is_valid_group_size
from olivepress.quantization.options import (
    AwqOptions,
    GptqOptions,
    ModuleOverride,
    QuantizeOptions,
    RtnOptions,
)

MIXED_PRECISION_KEY = "mixed_precision_info"  # config.json's entry, Olive's model attribute of that name


class OverrideConfig(ConfigModel):
    """One module's settings in place of the pass's (Olive's `overrides` values)."""

    bits: int | None = Field(None, description="Bits of this module's weights.")
    group_size: int | None = Field(None, description="Input channels per group of this module.")
    sym: bool | None = Field(None, validation_alias=AliasChoices("sym", "symmetric"),
                             description="Symmetric quantization of this module (Olive writes it as `symmetric`).")

    @field_validator("group_size")
    @classmethod
    def _group_size_fits_matmulnbits(cls, group_size: int | None) -> int | None:
        return None if group_size is None else matmulnbits_block(group_size)


def matmulnbits_block(group_size: int) -> int:
    if not is_valid_group_size(group_size):
        raise ValueError(f"group_size {group_size}: MatMulNBits needs a power of two >= {MIN_GROUP_SIZE}")
    return group_size


class QuantizeConfig(PassConfig):
    """The options of a quantizer, each with its one default and description; `options()` hands them to it."""

    options_class: ClassVar[type[QuantizeOptions]]
    search_defaults = {"group_size": (32, 64, 128)}

    bits: int = Field(4, description="Bits per weight: 4, or 8 where the checkpoint format holds it (GPTQ, RTN).")
    group_size: int = Field(
        128, description="Input channels per quantization group, a power of two >= 16. When it does not divide a "
        "layer's in_features, the largest power of two <= 32 (the GenAI builder's int4 block size) that divides them "
        "all is used, with a warning.",
    )
    modules_to_not_convert: list[str] = Field(
        default_factory=lambda: ["lm_head"],
        description="Modules kept in float, by name or trailing name components. Only modules outside the decoder "
        "layers qualify; remove lm_head (or set lm_head: true) to quantize the LM head too (round-to-nearest).",
    )
    lm_head: bool = Field(False, description="Quantize the LM head too (Olive's name): lm_head leaves "
                          "modules_to_not_convert.")
    embeds: bool | Literal["tied"] = Field(
        False, description="Quantize the input embeddings too (Olive's name): for a model that ties them to its LM head, "
        "quantized with the same settings (lm_head: true), the table is stored once, as the head's codes, which the "
        "GenAI builder reads into a GatherBlockQuantized. \"tied\": only when the model ties them (what `olivepress "
        "quantize` sets), leaving an untied embedding float.")
    overrides: dict[str, OverrideConfig] = Field(
        default_factory=dict, description="Per module (full name, e.g. model.layers.0.mlp.down_proj): bits, "
        "group_size, sym (or symmetric) in place of the pass's. They win over a SelectiveMixedPrecision choice, which "
        "the pass reads from the model's config.json (mixed_precision_info, as Olive keeps it).",
    )

    def options(self, mixed_precision: dict[str, Any] | None = None) -> QuantizeOptions:
        """The quantizer's options: this config's value of each field that its options class declares, after
        `mixed_precision` (a SelectiveMixedPrecision choice) as Olive merges it: its defaults replace the pass's bits,
        group_size and sym; its overrides lie under the pass's own."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self.options_class)}
        values["modules_to_not_convert"] = tuple(name for name in self.modules_to_not_convert
                                                 if not (self.lm_head and name == "lm_head"))
        overrides: dict[str, dict[str, Any]] = {
            name: dict(entry) for name, entry in (mixed_precision or {}).get("overrides", {}).items()}
        for key, value in (mixed_precision or {}).get("default", {}).items():
            values[_OLIVE_KEYS.get(key, key)] = value
        for name, override in self.overrides.items():
            overrides[name] = overrides.get(name, {}) | override.model_dump(exclude_none=True)
        values["overrides"] = {name: ModuleOverride(**{str(_OLIVE_KEYS.get(k, k)): v for k, v in entry.items()})
                               for name, entry in overrides.items()}
        return self.options_class(**values)

    @field_validator("embeds")
    @classmethod
    def _embeddings_need_the_head(cls, embeds: bool, info: ValidationInfo) -> bool:
        kept = info.data.get("modules_to_not_convert", ["lm_head"])
        if embeds and not info.data.get("lm_head") and "lm_head" in kept:
            raise ValueError("a quantized input embedding is stored as the tied LM head's table, so the LM head must "
                             "be quantized too: set lm_head: true")
        return embeds

    @field_validator("bits")
    @classmethod
    def _bits_fit_the_format(cls, bits: int) -> int:
        fmt = CHECKPOINT_FORMATS[cls.options_class.algorithm]
        allowed = FORMAT_BITS[fmt]
        if bits not in allowed:
            raise ValueError(f"{bits} bits cannot be written: the {fmt} checkpoint format holds "
                             f"{' or '.join(map(str, allowed))}-bit weights")
        return bits

    @field_validator("group_size")
    @classmethod
    def _group_size_fits_matmulnbits(cls, group_size: int) -> int:
        return matmulnbits_block(group_size)


class CalibratedConfig(QuantizeConfig):
    data_config_fields: ClassVar[tuple[str, ...]] = ("data_config",)
    added_fields: ClassVar[tuple[str, ...]] = ("pack_model_for_onnx_conversion",)

    pack_model_for_onnx_conversion: bool = Field(
        False, description="Olive 0.6's switch between its torch layout and one its OnnxConversion exports as "
        "MatMulNBits. olivepress writes one checkpoint, which ModelBuilder turns into MatMulNBits (OnnxConversion "
        "traces its dequantizing torch modules instead); true is accepted with a warning saying so.",
    )

    data_config: str | None = Field(
        None, description="The data_configs entry whose text calibrates the quantizer; default: the seed text "
        "shipped with olivepress (travel Q&A and tone phrases).",
    )
    num_samples: int = Field(64, ge=1, description="Calibration sequences (at most; fewer when the data runs out).")
    seq_len: int = Field(512, ge=1, description="Tokens per calibration sequence.")


class AWQConfig(CalibratedConfig):
    options_class: ClassVar[type[QuantizeOptions]] = AwqOptions

    sym: bool = Field(False, description="Symmetric quantization; default asymmetric with a zero point, as AWQ does.")
    n_grid: int = Field(20, ge=1, description="Grid points of the activation-aware scale search (and of the clip search).")
    duo_scaling: bool = Field(True, description="Scale by mean|x|^a / mean|w|^(1-a) rather than mean|x|^a alone.")
    apply_clip: bool = Field(
        True, validation_alias=AliasChoices("apply_clip", "clip"),
        description="Search each group's clipping range (not for q/k projections) before quantizing.",
    )
    gptq_rounding: bool = Field(
        False, description="Round the scaled weights with GPTQ (error feedback through the inverse Hessian, act "
        "order, static groups) instead of round-to-nearest; slower.",
    )


class GPTQConfig(CalibratedConfig):
    options_class: ClassVar[type[QuantizeOptions]] = GptqOptions

    sym: bool = Field(
        False, description="Symmetric quantization (zero point 2**(bits-1)). Default asymmetric, a zero point per group: "
        "on SmolLM2-135M it closes 64% of the int4 perplexity gap where symmetric closes 42% (docs/benchmarks.md)."
    )
    damp_percent: float = Field(0.01, gt=0, le=1, description="Damping added to the Hessian diagonal, as a fraction of its mean.")
    desc_act: bool = Field(
        True, description="Act order: quantize columns by decreasing Hessian diagonal, with each group's scale and "
        "zero point fixed up front (static groups), so the checkpoint needs no g_idx.",
    )
    block_size: int = Field(128, ge=1, description="Columns updated together (lazy batch updates).")
    apply_clip: bool = Field(
        True, validation_alias=AliasChoices("apply_clip", "clip"),
        description="Choose each group's range by the least output error (as AWQ clips) before its scale and zero point.",
    )


class RTNConfig(QuantizeConfig):
    options_class: ClassVar[type[QuantizeOptions]] = RtnOptions

    sym: bool = Field(False, description="Symmetric quantization; default asymmetric with a zero point per group.")


_OLIVE_KEYS = {"symmetric": "sym"}  # Olive's mixed_precision_info spelling -> this config's

QuantizeConfigT = TypeVar("QuantizeConfigT", bound=QuantizeConfig)


class _Quantize(Pass[HfModel, QuantizeConfigT]):
    accepts = ("hf",)
    produces = "hf"
    # 3: float tensors written in float16; embeds; RTN adds to olivepress's gptq checkpoints. 4: AWQ and GPTQ round
    # a quantized LM head with GPTQ on its calibration inputs
    version = "4"

    def run(self, model: HfModel, config: QuantizeConfigT, context: PassContext) -> HfModel:
        from olivepress.models.loading import load_causal_lm_by_layer, read_model_config, without_dtype

        if getattr(config, "pack_model_for_onnx_conversion", False):
            context.logger.warning("%s: pack_model_for_onnx_conversion (Olive 0.6) changes nothing here: the checkpoint "
                                   "becomes MatMulNBits through ModelBuilder; OnnxConversion traces its dequantizing "
                                   "modules", self.name)
        from olivepress.quantization.algorithms import plan, quantize_model
        from olivepress.quantization.checkpoint import extendable, save_quantized
        from olivepress.quantization.qembedding import ties_embeddings

        if model.adapter_path is not None:
            raise OlivepressError(f"{self.name} quantizes a base model, but this one has an adapter "
                                  f"({model.adapter_path}); merge it first with a MergeAdapterWeights pass")
        model_config = read_model_config(model.path)
        existing = model_config.get("quantization_config")
        if existing and not isinstance(config, RTNConfig):
            raise OlivepressError(f"{model.path}: the model is already quantized (quantization_config.quant_method "
                                  f"'{existing.get('quant_method')}'); {self.name} needs the float model")
        if existing:
            extendable(existing, model.path)
        options = config.options(model_config.get(MIXED_PRECISION_KEY))
        load_kwargs = without_dtype(model.load_kwargs)
        rows = calibration(config, model, load_kwargs, context)
        dtype = model_dtype(model.load_kwargs, model_config)
        context.logger.info("%s: loading %s in %s", self.name, model.path, dtype)
        torch_model, deferred = load_causal_lm_by_layer(model.path, dtype, **load_kwargs)  # layers read one at a time
        quant_plan, group_size = plan(torch_model.eval(), options, context.logger)
        embeds = config.embeds is True or (config.embeds == "tied" and ties_embeddings(torch_model))
        if existing and not quant_plan.all_linears() and not embeds:
            raise OlivepressError(f"{model.path}: every linear the pass would quantize is quantized already; "
                                  f"set lm_head: true (or embeds: true) to quantize what stays float")
        quantize_model(torch_model, options, quant_plan, group_size, rows, _device(context), deferred)
        if embeds:
            _quantize_tied_embedding(torch_model, dataclasses.replace(options, group_size=group_size), dtype)
        save_quantized(torch_model, model.path, context.output_dir,
                       _checkpoint_config(existing, options, group_size, quant_plan.all_linears(), rows, embeds))
        return HfModel(path=context.output_dir, task=model.task, load_kwargs=model.load_kwargs)


def calibration(config: QuantizeConfig, model: HfModel, load_kwargs: dict[str, Any], context: PassContext):
    """The calibration rows of a calibrated quantizer (AWQ, GPTQ); None for RTN."""
    from olivepress.models.loading import load_tokenizer

    if not isinstance(config, CalibratedConfig):
        return None
    tokenizer = load_tokenizer(model.path, **tokenizer_kwargs(load_kwargs))
    return calibration_rows(config.data_config, config.num_samples, config.seq_len, context, tokenizer)


def _quantize_tied_embedding(torch_model: Any, options: QuantizeOptions, dtype: str) -> None:
    from olivepress.models.loading import torch_dtype
    from olivepress.quantization.qembedding import tie_quantized_embedding, tied_embedding_problem

    problem = tied_embedding_problem(torch_model, options)
    if problem:
        raise OlivepressError(f"embeds: {problem}")
    tie_quantized_embedding(torch_model, torch_dtype(dtype))


def _checkpoint_config(existing: dict[str, Any] | None, options: QuantizeOptions, group_size: int,
                       quantized: list[str], rows: Any, embeds: bool) -> dict[str, Any]:
    from olivepress.quantization.checkpoint import extended_quantization_config, quantization_config

    if existing:
        return extended_quantization_config(existing, options, group_size, quantized, embeds)
    samples = {} if rows is None else {"calibration_samples": int(rows.shape[0]),
                                       "calibration_seq_len": int(rows.shape[1])}
    return quantization_config(options, group_size, samples, embeds)


class AWQ(_Quantize[AWQConfig]):
    name = "AWQ"
    description = "Activation-aware int4 weight quantization (AWQ) in torch, on CPU or CUDA; writes an awq checkpoint."
    Config = AWQConfig


class GPTQ(_Quantize[GPTQConfig]):
    name = "GPTQ"
    description = "GPTQ int4/int8 weight quantization in torch, on CPU or CUDA; writes a gptq checkpoint."
    Config = GPTQConfig


class RTN(_Quantize[RTNConfig]):
    name = "RTN"
    description = "Round-to-nearest int4/int8 weight quantization, no calibration data; writes a gptq checkpoint."
    Config = RTNConfig


def calibration_rows(data_config: str | None, num_samples: int, seq_len: int, context: PassContext, tokenizer: Any):
    """Up to `num_samples` rows of `seq_len` tokens from the named data config, else the seed text."""
    from olivepress.data.container import HuggingfaceContainer, default_calibration_data

    data = context.data_config(data_config) if data_config else default_calibration_data()
    rows = HuggingfaceContainer(data).calibration_rows(tokenizer, num_samples, seq_len)
    if rows.shape[0] < num_samples:
        context.logger.warning("calibration data %s holds %d sequences of %d tokens, fewer than num_samples %d",
                               data.name, rows.shape[0], seq_len, num_samples)
    return rows


def model_dtype(load_kwargs: dict[str, Any], model_config: dict[str, Any]) -> str:
    """The dtype load_kwargs ask for, else the one the model is stored in: quantizing never needs more than one copy."""
    for value in (load_kwargs.get("torch_dtype"), load_kwargs.get("dtype")):
        if isinstance(value, str) and value != "auto":
            return value
    return stored_dtype(model_config)


def tokenizer_kwargs(load_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"trust_remote_code": True} if load_kwargs.get("trust_remote_code") else {}


def _device(context: PassContext):
    import torch

    if context.accelerator.device == "gpu":
        if torch.cuda.is_available():
            return torch.device("cuda")
        context.logger.warning("the accelerator is a GPU, but torch sees no CUDA device; quantizing on the CPU")
    return torch.device("cpu")
