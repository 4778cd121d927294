"""The quantized Hugging Face folder: written by the quantization passes, read by the GenAI builder and by
`load_quantized` (for evaluation and LoRA training in torch)."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from olivepress import __version__
from olivepress.errors import OlivepressError
from olivepress.quantization.formats import FORMATS
from olivepress.quantization.layers import matches
from olivepress.quantization.options import GptqOptions, QuantizeOptions
from olivepress.quantization.qembedding import (
    TiedQuantEmbedding,
    input_embeddings,
    output_embeddings,
    tie_quantized_embedding,
)
from olivepress.quantization.qlinear import QuantLinear, set_submodule

WEIGHTS_FILE = "model.safetensors"
QUANTIZER = f"olivepress {__version__}"
COPIED_FILES = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab*", "merges.txt", "*.tiktoken",
                "tokenizer.model", "chat_template*", "generation_config.json", "*.py")


def quantization_config(options: QuantizeOptions, group_size: int, calibration: dict[str, Any],
                        embeds: bool = False) -> dict[str, Any]:
    """config.json's quantization_config in the shape AutoAWQ / AutoGPTQ write and the GenAI builder reads;
    `meta` records how olivepress made it; `embeds` (Olive's key) that the input embedding is the tied LM head's."""
    meta = {"quantizer": QUANTIZER, "algorithm": options.algorithm, "sym": options.sym,
            "group_size_requested": options.group_size, **options.algorithm_options(), **calibration}
    kept = list(options.modules_to_not_convert)
    tied = {"embeds": True} if embeds else {}
    if options.fmt == "awq":
        return {"quant_method": "awq", "version": "gemm", "bits": options.bits, "group_size": group_size,
                "zero_point": True, "modules_to_not_convert": kept, **tied, "meta": meta}
    # desc_act would tell readers that g_idx permutes the groups; olivepress keeps them contiguous (static groups)
    static_groups = isinstance(options, GptqOptions) and options.desc_act
    return {"quant_method": "gptq", "checkpoint_format": "gptq", "bits": options.bits, "group_size": group_size,
            "sym": options.sym, "desc_act": False, "static_groups": static_groups,
            "lm_head": "lm_head" not in kept, "modules_to_not_convert": kept, **tied, "meta": meta}


def extended_quantization_config(existing: dict[str, Any], options: QuantizeOptions, group_size: int,
                                 quantized: list[str], embeds: bool) -> dict[str, Any]:
    """The quantization_config of a checkpoint after `options` (RTN) quantized `quantized`, modules the pass that
    wrote it left float; as Olive merges a second quantizer's settings into the first's, the checkpoint's own
    bits and group size stay its defaults, and the new modules that differ get `dynamic` entries (save_quantized)."""
    kept = [name for name in existing.get("modules_to_not_convert") or []
            if not any(matches(module, [name]) for module in quantized)]
    meta = dict(existing.get("meta") or {})
    meta["followed_by"] = [*meta.get("followed_by", []), {
        "quantizer": QUANTIZER, "algorithm": options.algorithm, "bits": options.bits, "group_size": group_size,
        "sym": options.sym, "modules": quantized}]
    config = {key: value for key, value in existing.items() if key not in ("dynamic", "meta")}
    config |= {"modules_to_not_convert": kept, "lm_head": "lm_head" not in kept}
    if embeds:
        config["embeds"] = True
    return config | {"meta": meta}


def extendable(existing: dict[str, Any], where: Path) -> None:
    """Refuse a checkpoint that RTN cannot add modules to: one in another format, or written by another tool (as
    Olive's rtn takes its own `olive` checkpoints only)."""
    method = existing.get("quant_method")
    quantizer = str((existing.get("meta") or {}).get("quantizer", ""))
    if method != "gptq" or not quantizer.startswith("olivepress "):
        written = f"written by {quantizer}" if quantizer else "not written by olivepress"
        raise OlivepressError(f"{where / 'config.json'}: the model is already quantized (quant_method {method!r}, "
                              f"{written}); RTN adds modules to olivepress's own gptq checkpoints (GPTQ or RTN "
                              f"output) only; quantize the float model instead")


def save_quantized(model: nn.Module, source: Path, output: Path, config: dict[str, Any]) -> None:
    """Write `model` (its quantized linears as QuantLinear) as a Hugging Face folder in `output`. Float32 matrices
    that stay float (the embedding, a float LM head) are written in float16, as AutoAWQ and GPTQModel write them."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    stored: set[int] = set()
    for name, tensor in model.state_dict().items():
        pointer = tensor.data_ptr()
        if pointer in stored:  # a tied weight (the LM head sharing the embedding): readers re-tie it
            continue
        stored.add(pointer)
        tensors[name] = _storage_dtype(tensor.detach().to("cpu")).contiguous()
    output.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(output / WEIGHTS_FILE), metadata={"format": "pt"})

    model_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    model_config["quantization_config"] = config | _dynamic(model, config)
    tied_quantized = isinstance(input_embeddings(model), TiedQuantEmbedding)
    if model_config.get("tie_word_embeddings") and isinstance(output_embeddings(model), QuantLinear) \
            and not tied_quantized:
        model_config["tie_word_embeddings"] = False
    (output / "config.json").write_text(json.dumps(model_config, indent=2) + "\n", encoding="utf-8")
    for pattern in COPIED_FILES:
        for path in source.glob(pattern):
            if path.is_file():
                shutil.copy2(path, output / path.name)


def _storage_dtype(tensor: torch.Tensor) -> torch.Tensor:
    """float16 for a float32 matrix (a float embedding or LM head) whose values float16 holds, else as it is.
    Vectors (norms, biases) are a few KB and stay float32: the builder adds Gemma's norm offset (1 + w) in the
    stored dtype, which float16 would round."""
    if tensor.dtype != torch.float32 or tensor.dim() < 2:
        return tensor
    half = tensor.to(torch.float16)
    return half if bool(torch.isfinite(half).all()) or not bool(torch.isfinite(tensor).all()) else tensor


def load_quantized(path: Path, dtype: torch.dtype, trust_remote_code: bool = False) -> nn.Module:
    """A causal LM from an awq/gptq folder, on the CPU, with QuantLinear modules that dequantize on the fly."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    path = Path(path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    settings = dict(getattr(config, "quantization_config", None) or {})
    fmt = settings.get("quant_method")
    if fmt not in FORMATS:
        raise OlivepressError(f"{path / 'config.json'}: quantization_config.quant_method {fmt!r} cannot be loaded "
                              f"by olivepress; it loads {', '.join(FORMATS)}")
    del config.quantization_config  # transformers must not look for autoawq / gptqmodel
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    model.tie_weights()  # skipped with the initialization; a float LM head tied to the embedding shares its tensor

    tensors: dict[str, torch.Tensor] = {}
    for weights_file in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(weights_file))
    if not tensors:
        raise OlivepressError(f"{path}: no *.safetensors weights")
    for name in sorted({key.rsplit(".", 1)[0] for key in tensors if key.endswith(".qweight")}):
        linear = model.get_submodule(name)
        bits, group_size = module_bits_and_group_size(settings, name)
        set_submodule(model, name, QuantLinear(linear.in_features, linear.out_features, linear.bias is not None, fmt,
                                               bits, group_size, dtype=dtype))
    if settings.get("embeds"):
        _tie_quantized_embedding(model, dtype, path)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    state = model.state_dict()
    loaded = {tensor.data_ptr() for name, tensor in state.items() if name not in missing}
    missing = [name for name in missing if state[name].data_ptr() not in loaded]  # tied weights come with their source
    if missing or unexpected:
        raise OlivepressError(f"{path}: the weights do not fit the model built from config.json "
                              f"(missing: {', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(unexpected[:5]) or 'none'})")
    return model.eval()


def module_bits_and_group_size(settings: dict[str, Any], name: str) -> tuple[int, int]:
    """The bits and group size of the quantized module `name`: those of the first `dynamic` pattern that matches its
    qweight, as the GenAI builder's gptq reader (and GPTQModel, which wrote the convention) resolve them, else the
    checkpoint's own."""
    for pattern, override in (settings.get("dynamic") or {}).items():
        if re.match(pattern.removeprefix("+:"), f"{name}.qweight"):
            return override.get("bits", settings["bits"]), override.get("group_size", settings["group_size"])
    return settings["bits"], settings["group_size"]


def _dynamic(model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """GPTQModel's `dynamic` entry for every quantized module whose bits or group size differ from the checkpoint's,
    which the GenAI builder reads per layer; nothing when none does."""
    dynamic = {f"+:^{re.escape(name)}\\.": {"bits": module.bits, "group_size": module.group_size}
               for name, module in model.named_modules()
               if isinstance(module, QuantLinear) and (module.bits, module.group_size) != (config["bits"], config["group_size"])}
    return {"dynamic": dynamic} if dynamic else {}


def _tie_quantized_embedding(model: nn.Module, dtype: torch.dtype, path: Path) -> None:
    if not isinstance(output_embeddings(model), QuantLinear) or not getattr(model.config, "tie_word_embeddings", False):
        raise OlivepressError(f"{path / 'config.json'}: quantization_config.embeds needs tie_word_embeddings: true and "
                              f"a quantized LM head (lm_head.qweight), whose table the embedding reads")
    tie_quantized_embedding(model, dtype)
