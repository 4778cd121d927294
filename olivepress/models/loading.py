"""Loading a Hugging Face folder into torch: plain checkpoints through transformers, olivepress's own
int4 checkpoints (AWQ/GPTQ/RTN output) through olivepress.quantization."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from olivepress.errors import OlivepressError

TORCH_DTYPES = ("float32", "float16", "bfloat16")


def torch_dtype(name: str) -> "torch.dtype":
    import torch

    if name not in TORCH_DTYPES:
        raise OlivepressError(f"unknown torch_dtype '{name}'; use one of {', '.join(TORCH_DTYPES)}")
    return getattr(torch, name)


def read_model_config(path: Path) -> dict[str, Any]:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise OlivepressError(f"{path}: not a Hugging Face model folder (no config.json)")
    return json.loads(config_file.read_text(encoding="utf-8"))


def stored_dtype(model_config: dict[str, Any]) -> str:
    """The dtype config.json says the weights are stored in; float32 when it names none (or 'auto')."""
    for value in (model_config.get("dtype"), model_config.get("torch_dtype")):
        if isinstance(value, str) and value != "auto":
            return value
    return "float32"


def without_dtype(load_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A model's from_pretrained kwargs less any dtype: the caller decides the dtype."""
    return {key: value for key, value in load_kwargs.items() if key not in ("torch_dtype", "dtype")}


def quantization_method(path: Path) -> str | None:
    """The folder's quantization_config.quant_method, or None for a float checkpoint."""
    return (read_model_config(path).get("quantization_config") or {}).get("quant_method")


def load_causal_lm(path: Path, dtype: str = "float32", **load_kwargs: Any) -> "torch.nn.Module":
    """A causal LM on CPU in `dtype`; a quantized folder comes back with modules that dequantize on the fly."""
    if quantization_method(path) is not None:
        from olivepress.quantization.checkpoint import load_quantized

        return load_quantized(Path(path), torch_dtype(dtype), trust_remote_code=load_kwargs.get("trust_remote_code", False))
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype), **load_kwargs)


def load_tokenizer(path: Path, **load_kwargs: Any):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **load_kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
