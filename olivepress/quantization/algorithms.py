"""Quantizing a loaded causal LM in place with RTN, AWQ or GPTQ: each quantized nn.Linear becomes a QuantLinear."""

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from olivepress.errors import OlivepressError
from olivepress.models.loading import DeferredLayers
from olivepress.quantization.awq import awq_quantize_layer, gptq_rounding_options
from olivepress.quantization.gptq import gptq_quantize
from olivepress.quantization.groups import choose_group_size
from olivepress.quantization.layers import QuantPlan, final_norm, linear_at, plan_quantization
from olivepress.quantization.layerwise import (
    InputStats,
    each_layer,
    output_stats,
    quantize_layer_by_layer,
)
from olivepress.quantization.options import AwqOptions, GptqOptions, QuantizeOptions
from olivepress.quantization.packing import QuantizedWeight, check_packable
from olivepress.quantization.qembedding import output_embeddings
from olivepress.quantization.qlinear import QuantLinear, set_submodule
from olivepress.quantization.rtn import quantize_rtn


def plan(model: nn.Module, options: QuantizeOptions, logger: logging.Logger) -> tuple[QuantPlan, int]:
    """Which linears to quantize and the group size to use; refuses what the checkpoint format cannot hold."""
    quant_plan = plan_quantization(model, list(options.modules_to_not_convert))
    linears = {name: linear_at(model, name) for name in quant_plan.all_linears()}
    _check_overrides(model, options, set(linears))
    by_default = {name: m.in_features for name, m in linears.items() if _override_group_size(options, name) is None}
    group_size = choose_group_size(options.group_size, by_default, logger) if by_default else options.group_size
    for name, linear in linears.items():
        module = dataclasses.replace(options, group_size=group_size).for_module(name)
        reason = check_packable(options.fmt, module.bits, linear.in_features, linear.out_features, module.group_size)
        if reason:
            where = f" (overrides.{name})" if name in options.overrides else ""
            raise OlivepressError(f"{options.algorithm} cannot quantize {name}{where}: {reason}")
    return quant_plan, group_size


def _override_group_size(options: QuantizeOptions, name: str) -> int | None:
    override = options.overrides.get(name)
    return None if override is None else override.group_size


def _check_overrides(model: nn.Module, options: QuantizeOptions, quantized: set[str]) -> None:
    """An override must name a module of the model; one that names a module this pass keeps float does nothing,
    as in Olive (SelectiveMixedPrecision names the tied embedding beside the LM head)."""
    modules = {name for name, _ in model.named_modules()}
    for name in options.overrides:
        if name not in modules:
            raise OlivepressError(f"overrides.{name}: the model has no module of that name")
    if isinstance(options, AwqOptions) and quantized & set(options.overrides):
        raise OlivepressError(f"overrides.{sorted(quantized & set(options.overrides))[0]}: AWQ quantizes every layer "
                              f"with the same bits, group_size and sym (its awq checkpoint holds 4-bit weights only); "
                              f"use GPTQ or RTN for per-module settings")


def quantize_model(model: nn.Module, options: QuantizeOptions, quant_plan: QuantPlan, group_size: int,
                   rows: torch.Tensor | None, device: torch.device, deferred: DeferredLayers | None = None) -> None:
    """Quantize `model` (on the CPU) in place with the `group_size` that `plan` chose; `rows` [n, seq_len] are the
    calibration tokens of AWQ and GPTQ. With `deferred`, each decoder layer's weights are read just before it is
    quantized (a model from load_causal_lm_by_layer).

    A quantized LM head is rounded with GPTQ on the statistics of its inputs (the final norm's outputs) when the
    quantizer calibrates: on SmolLM2 the builder's round-to-nearest int4 head alone costs a third of the int4
    perplexity gap on unseen text, and GPTQ rounding halves that (docs/quantization.md). Other linears outside the
    decoder layers, and every one under RTN, are rounded to nearest."""
    fitted = dataclasses.replace(options, group_size=group_size)
    quantize_layer = _layer_quantizer(fitted, quant_plan)

    def load_layer(index: int) -> None:
        if deferred is not None:
            deferred.load(quant_plan.layers[index], quant_plan.full_name(index, ""))

    head_inputs: InputStats | None = None
    if quantize_layer is None:
        for index, layer in each_layer(quant_plan.layers, "RTN", load_layer):
            for name in quant_plan.layer_linears[index]:
                _swap_rtn(layer, name, fitted.for_module(quant_plan.full_name(index, name)), device)
    else:
        if rows is None:
            raise ValueError(f"{fitted.algorithm} needs calibration rows")
        # GPTQ feeds each layer the outputs of the quantized layers before it; AWQ, as llm-awq, the float ones
        last_outputs = quantize_layer_by_layer(
            model, quant_plan.layers, quant_plan.layer_linears, rows, device, quantize_layer,
            propagate_float=isinstance(fitted, AwqOptions), description=fitted.algorithm.upper(), load_layer=load_layer)
        norm = final_norm(model, quant_plan.layers_path)
        if norm is not None and output_embeddings(model) in [linear_at(model, n) for n in quant_plan.outer_linears]:
            head_inputs = output_stats(norm, last_outputs, device)
    for name in quant_plan.outer_linears:
        linear = linear_at(model, name)
        if head_inputs is not None and linear is output_embeddings(model):
            head_options = _rounding_options(fitted.for_module(name))
            _swap(model, name, gptq_quantize(linear.weight.detach().to(device), head_inputs.hessian, head_options),
                  fitted.fmt)
        else:
            _swap_rtn(model, name, fitted.for_module(name), device)


def _rounding_options(options: QuantizeOptions) -> GptqOptions:
    """How a calibrated quantizer rounds a linear outside the decoder layers: GPTQ, with AWQ's GPTQ-rounding settings
    for AWQ."""
    return options if isinstance(options, GptqOptions) else gptq_rounding_options(cast(AwqOptions, options))


def _layer_quantizer(options: QuantizeOptions, quant_plan: QuantPlan) -> Callable[
        [int, nn.Module, list[str], dict[str, InputStats]], None] | None:
    """How a calibrated decoder layer is quantized; None for RTN, which needs no calibration."""
    if isinstance(options, AwqOptions):
        return functools.partial(_awq_layer, options=options)
    if isinstance(options, GptqOptions):
        return functools.partial(_gptq_layer, options=options, quant_plan=quant_plan)
    return None


def _awq_layer(index: int, layer: nn.Module, names: list[str], stats: dict[str, InputStats],
               options: AwqOptions) -> None:
    for name, weight in awq_quantize_layer(layer, names, stats, options).items():
        _swap(layer, name, weight, options.fmt)


def _gptq_layer(index: int, layer: nn.Module, names: list[str], stats: dict[str, InputStats], options: GptqOptions,
                quant_plan: QuantPlan) -> None:
    # linears that read the same input and quantize with the same settings share its Hessian; GPTQ treats rows
    # independently, so they are quantized together as one stacked weight
    groups: dict[tuple[int, int, int, bool], list[str]] = {}
    settings: dict[tuple[int, int, int, bool], GptqOptions] = {}
    for name in names:
        module = cast(GptqOptions, options.for_module(quant_plan.full_name(index, name)))
        key = (id(stats[name]), module.bits, module.group_size, module.sym)
        groups.setdefault(key, []).append(name)
        settings[key] = module
    for key, group in groups.items():
        weights = [linear_at(layer, name).weight for name in group]
        stacked = gptq_quantize(torch.cat(weights), stats[group[0]].hessian, settings[key])
        for name, weight in zip(group, _split_rows(stacked, [w.shape[0] for w in weights]), strict=True):
            _swap(layer, name, weight, options.fmt)


def _swap_rtn(root: nn.Module, name: str, options: QuantizeOptions, device: torch.device) -> None:
    linear = linear_at(root, name)
    weight = quantize_rtn(linear.weight.detach().to(device), options.bits, options.group_size, options.sym)
    _swap(root, name, weight, options.fmt)


def _swap(root: nn.Module, name: str, weight: QuantizedWeight, fmt: str) -> None:
    linear = linear_at(root, name)
    module = QuantLinear.from_weight(weight, fmt, linear.bias)
    set_submodule(root, name, module.to(linear.weight.device))


def _split_rows(weight: QuantizedWeight, sizes: list[int]) -> list[QuantizedWeight]:
    parts = zip(weight.codes.split(sizes), weight.zeros.split(sizes), weight.scales.split(sizes), strict=True)
    return [QuantizedWeight(codes=c.contiguous(), zeros=z.contiguous(), scales=s.contiguous(), bits=weight.bits,
                            group_size=weight.group_size) for c, z, s in parts]
