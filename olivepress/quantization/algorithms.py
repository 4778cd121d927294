"""Quantizing a loaded causal LM in place with RTN, AWQ or GPTQ: each quantized nn.Linear becomes a QuantLinear."""

import functools
import logging
from dataclasses import dataclass

import torch
from torch import nn

from olivepress.errors import OlivepressError
from olivepress.quantization.awq import AwqOptions, awq_quantize_layer
from olivepress.quantization.formats import CHECKPOINT_FORMATS
from olivepress.quantization.gptq import GptqOptions, gptq_quantize
from olivepress.quantization.groups import choose_group_size
from olivepress.quantization.layers import QuantPlan, plan_quantization
from olivepress.quantization.layerwise import (
    InputStats,
    each_layer,
    quantize_layer_by_layer,
)
from olivepress.quantization.packing import QuantizedWeight, check_packable
from olivepress.quantization.qlinear import QuantLinear, set_submodule
from olivepress.quantization.rtn import quantize_rtn


@dataclass(frozen=True)
class QuantizeSpec:
    algorithm: str  # rtn | awq | gptq
    bits: int
    group_size: int
    sym: bool
    modules_to_not_convert: tuple[str, ...] = ("lm_head",)
    apply_clip: bool = True  # AWQ and GPTQ
    # AWQ
    n_grid: int = 20
    duo_scaling: bool = True
    # GPTQ
    damp_percent: float = 0.01
    desc_act: bool = False
    block_size: int = 128

    @property
    def fmt(self) -> str:
        return CHECKPOINT_FORMATS[self.algorithm]

    def algorithm_options(self) -> dict[str, object]:
        if self.algorithm == "awq":
            return {"n_grid": self.n_grid, "duo_scaling": self.duo_scaling, "apply_clip": self.apply_clip}
        if self.algorithm == "gptq":
            return {"damp_percent": self.damp_percent, "desc_act": self.desc_act, "block_size": self.block_size,
                    "apply_clip": self.apply_clip}
        return {}


def plan(model: nn.Module, spec: QuantizeSpec, logger: logging.Logger) -> tuple[QuantPlan, int]:
    """Which linears to quantize and the group size to use; refuses what the checkpoint format cannot hold."""
    quant_plan = plan_quantization(model, list(spec.modules_to_not_convert))
    linears = {name: model.get_submodule(name) for name in quant_plan.all_linears()}
    group_size = choose_group_size(spec.group_size, {name: m.in_features for name, m in linears.items()}, logger)
    for name, linear in linears.items():
        reason = check_packable(spec.fmt, spec.bits, linear.in_features, linear.out_features, group_size)
        if reason:
            raise OlivepressError(f"{spec.algorithm} cannot quantize {name}: {reason}")
    return quant_plan, group_size


def quantize_model(model: nn.Module, spec: QuantizeSpec, quant_plan: QuantPlan, group_size: int,
                   rows: torch.Tensor | None, device: torch.device) -> None:
    """Quantize `model` (on the CPU) in place; `rows` [n, seq_len] are the calibration tokens of AWQ and GPTQ."""
    if spec.algorithm == "rtn":
        for index, layer in each_layer(quant_plan.layers, "RTN"):
            for name in quant_plan.layer_linears[index]:
                _swap_rtn(layer, name, spec, group_size, device)
    else:
        awq = spec.algorithm == "awq"
        quantize_layer = functools.partial(_awq_layer if awq else _gptq_layer, spec=spec, group_size=group_size)
        # GPTQ feeds each layer the outputs of the quantized layers before it; AWQ, as llm-awq, the float ones
        quantize_layer_by_layer(model, quant_plan.layers, quant_plan.layer_linears, rows, device, quantize_layer,
                                propagate_float=awq, description=spec.algorithm.upper())
    for name in quant_plan.outer_linears:  # the LM head, when it is not kept float: round-to-nearest
        _swap_rtn(model, name, spec, group_size, device)


def _awq_layer(layer: nn.Module, names: list[str], stats: dict[str, InputStats], spec: QuantizeSpec,
               group_size: int) -> None:
    options = AwqOptions(bits=spec.bits, group_size=group_size, sym=spec.sym, n_grid=spec.n_grid,
                         duo_scaling=spec.duo_scaling, apply_clip=spec.apply_clip)
    for name, weight in awq_quantize_layer(layer, names, stats, options).items():
        _swap(layer, name, weight, spec.fmt)


def _gptq_layer(layer: nn.Module, names: list[str], stats: dict[str, InputStats], spec: QuantizeSpec,
                group_size: int) -> None:
    options = GptqOptions(bits=spec.bits, group_size=group_size, sym=spec.sym, damp_percent=spec.damp_percent,
                          desc_act=spec.desc_act, block_size=spec.block_size, apply_clip=spec.apply_clip)
    # linears that read the same input share its Hessian; GPTQ treats rows independently, so they are
    # quantized together as one stacked weight
    by_input: dict[int, list[str]] = {}
    for name in names:
        by_input.setdefault(id(stats[name]), []).append(name)
    for group in by_input.values():
        weights = [layer.get_submodule(name).weight for name in group]
        stacked = gptq_quantize(torch.cat(weights), stats[group[0]].hessian, options)
        for name, weight in zip(group, _split_rows(stacked, [w.shape[0] for w in weights])):
            _swap(layer, name, weight, spec.fmt)


def _swap_rtn(root: nn.Module, name: str, spec: QuantizeSpec, group_size: int, device: torch.device) -> None:
    linear = root.get_submodule(name)
    weight = quantize_rtn(linear.weight.detach().to(device), spec.bits, group_size, spec.sym)
    _swap(root, name, weight, spec.fmt)


def _swap(root: nn.Module, name: str, weight: QuantizedWeight, fmt: str) -> None:
    linear = root.get_submodule(name)
    module = QuantLinear.from_weight(weight, fmt, linear.bias)
    set_submodule(root, name, module.to(linear.weight.device))


def _split_rows(weight: QuantizedWeight, sizes: list[int]) -> list[QuantizedWeight]:
    parts = zip(weight.codes.split(sizes), weight.zeros.split(sizes), weight.scales.split(sizes))
    return [QuantizedWeight(codes=c.contiguous(), zeros=z.contiguous(), scales=s.contiguous(), bits=weight.bits,
                            group_size=weight.group_size) for c, z, s in parts]
