"""Loading a Hugging Face folder into torch: plain checkpoints through transformers, olivepress's own
int4 checkpoints (AWQ/GPTQ/RTN output) through olivepress.quantization, and, for the quantizers, a float
checkpoint whose decoder layers are read from its safetensors files one at a time."""

import json
from dataclasses import dataclass
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


@dataclass
class DeferredLayers:
    """Where the decoder layers' weights of a model built without them lie: tensor name -> safetensors file."""

    files: dict[str, Path]
    dtype: "torch.dtype"

    def load(self, module: "torch.nn.Module", prefix: str) -> None:
        """Read `module`'s weights (its tensors on the meta device, named `prefix` + their name in the checkpoint)."""
        _materialize(module, prefix, self.files, self.dtype, copy=True)


def load_causal_lm_by_layer(path: Path, dtype: str = "float32",
                            **load_kwargs: Any) -> tuple["torch.nn.Module", DeferredLayers | None]:
    """A float causal LM on CPU in `dtype` whose decoder layers hold no weights yet (they sit on the meta device
    until DeferredLayers.load reads them), so that a quantizer never holds more than one float layer. A quantized
    folder, one whose weights are not plain safetensors named as the model's own tensors, or load kwargs other than
    trust_remote_code and attn_implementation, load whole (and come back with None)."""
    from olivepress.quantization.layers import find_decoder_layers

    files = _safetensors_files(Path(path))
    if files is None or quantization_method(path) is not None or set(load_kwargs) - {"trust_remote_code", "attn_implementation"}:
        return load_causal_lm(path, dtype, **load_kwargs), None
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, trust_remote_code=load_kwargs.get("trust_remote_code", False))
    with init_empty_weights():  # parameters on the meta device; buffers (rotary frequencies) computed as usual
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype), **load_kwargs)
    expected = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    layers_path, _ = find_decoder_layers(model)
    if not {name for name in expected if name.startswith(layers_path + ".")} <= set(files):
        return load_causal_lm(path, dtype, **load_kwargs), None
    _materialize(model, "", files, torch_dtype(dtype), copy=False, skip=layers_path + ".")
    model.tie_weights()
    if any(tensor.is_meta for name, tensor in model.named_parameters() if not name.startswith(layers_path + ".")):
        return load_causal_lm(path, dtype, **load_kwargs), None
    return model.eval(), DeferredLayers(files, torch_dtype(dtype))


def _safetensors_files(path: Path) -> dict[str, Path] | None:
    """Tensor name -> file of a folder's safetensors weights (one file, or shards with an index); None for others."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {name: path / file for name, file in weight_map.items()}
    single = path / "model.safetensors"
    if not single.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as handle:
        return dict.fromkeys(handle.keys(), single)


def _materialize(module: "torch.nn.Module", prefix: str, files: dict[str, Path], dtype: "torch.dtype", copy: bool,
                 skip: str | None = None) -> None:
    """Replace `module`'s meta parameters found in `files` (as `prefix` + name) by the stored tensors in `dtype`,
    opening each file once; names starting with `skip` stay on the meta device. Without `copy`, a tensor stored in
    `dtype` stays on the file's memory map (as transformers loads it), where only the pages read are resident; with
    `copy` it is copied out, so that the map, and every page of it read so far, is released when the file closes."""
    import torch
    from safetensors import safe_open

    wanted: dict[Path, list[str]] = {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        if parameter.is_meta and prefix + name in files and not (skip and name.startswith(skip)):
            wanted.setdefault(files[prefix + name], []).append(name)
    for file, names in wanted.items():
        with safe_open(str(file), framework="pt") as handle:
            for name in names:
                owner, _, leaf = name.rpartition(".")
                tensor = handle.get_tensor(prefix + name).to(dtype, copy=copy)
                target = module.get_submodule(owner) if owner else module
                target._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)


def load_tokenizer(path: Path, **load_kwargs: Any):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **load_kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
