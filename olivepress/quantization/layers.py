"""Where the decoder layers and the linears to quantize are in a causal LM."""

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from olivepress.errors import OlivepressError
from olivepress.quantization.qlinear import QuantLinear

DECODER_LAYER_PATHS = (
    "model.layers", "model.language_model.layers", "model.decoder.layers",
    "transformer.h", "transformer.layers", "transformer.blocks", "gpt_neox.layers",
)
# the norm after the last decoder layer, beside the layers (Llama-style models, OPT, GPT-2, GPT-NeoX, Phi)
FINAL_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm")


@dataclass
class QuantPlan:
    """The decoder layers, and the linears to quantize by their full module names."""

    layers_path: str
    layers: nn.ModuleList
    layer_linears: list[list[str]]  # per layer, names relative to the layer
    outer_linears: list[str]  # linears outside the decoder layers (the LM head when it is not kept float)

    def full_name(self, layer_index: int, name: str) -> str:
        return f"{self.layers_path}.{layer_index}.{name}"

    def all_linears(self) -> list[str]:
        inner = [self.full_name(index, name) for index, names in enumerate(self.layer_linears) for name in names]
        return inner + self.outer_linears


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    for path in DECODER_LAYER_PATHS:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return path, layers
    raise OlivepressError(
        f"cannot find the decoder layers of {type(model).__name__}: tried {', '.join(DECODER_LAYER_PATHS)}"
    )


def final_norm(model: nn.Module, layers_path: str) -> nn.Module | None:
    """The norm that turns the last decoder layer's output into the LM head's input, or None when there is none
    of a known name beside the decoder layers."""
    parent = model.get_submodule(layers_path.rpartition(".")[0])
    return next((module for name in FINAL_NORM_NAMES if isinstance(module := getattr(parent, name, None), nn.Module)),
                None)


def linear_at(root: nn.Module, name: str) -> nn.Linear:
    """The submodule `name` of `root`, which a QuantPlan names only when it is an nn.Linear."""
    return cast(nn.Linear, root.get_submodule(name))


def weight_of(module: nn.Module) -> torch.Tensor:
    """`module.weight`, for modules known to hold a weight tensor (nn.Module's __getattr__ is typed Tensor | Module)."""
    return cast(torch.Tensor, module.weight)


def matches(name: str, patterns: list[str]) -> bool:
    """A module name matches a pattern that equals it or names its trailing components ('lm_head', 'mlp.down_proj')."""
    return any(name == pattern or name.endswith("." + pattern) for pattern in patterns)


def plan_quantization(model: nn.Module, modules_to_not_convert: list[str]) -> QuantPlan:
    """Every linear of every decoder layer, plus the linears outside them not in `modules_to_not_convert`.

    The GenAI builder reads every linear of a decoder layer in an awq/gptq checkpoint as quantized, so
    keeping one of them float would give a folder it cannot read; that is refused here.
    """
    path, layers = find_decoder_layers(model)
    layer_linears = []
    for index, layer in enumerate(layers):
        names = [name for name, module in layer.named_modules() if _is_float_linear(module)]
        kept = [name for name in names if matches(f"{path}.{index}.{name}", modules_to_not_convert)]
        if kept:
            raise OlivepressError(
                f"modules_to_not_convert: {path}.{index}.{kept[0]} is inside a decoder layer; the GenAI builder reads "
                f"every decoder-layer linear of a quantized checkpoint as quantized, so only modules outside the "
                f"decoder layers (such as lm_head) can stay float"
            )
        layer_linears.append(names)
    outer = [name for name, module in model.named_modules()
             if _is_float_linear(module) and not name.startswith(path + ".") and not matches(name, modules_to_not_convert)]
    return QuantPlan(layers_path=path, layers=layers, layer_linears=layer_linears, outer_linears=outer)


def _is_float_linear(module: nn.Module) -> bool:
    """A linear still to quantize: RTN adds to a quantized checkpoint, whose QuantLinears (nn.Linear subclasses) stay."""
    return isinstance(module, nn.Linear) and not isinstance(module, QuantLinear)
