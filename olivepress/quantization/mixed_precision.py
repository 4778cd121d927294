"""Which linears keep `high_bits` (Olive's SelectiveMixedPrecision): a layer-index heuristic, or a sensitivity score
per selection unit with the most sensitive units promoted until `1 - ratio` of the parameters are at high bits.

The result is Olive's `mixed_precision_info`: {"default": {...}, "overrides": {module: {...}}}, which the RTN and GPTQ
passes read. The q/k/v projections of a layer are one unit (the GenAI builder fuses them into one MatMul), scored on
their summed statistics as Olive does. Weights are fake-quantized with olivepress's round-to-nearest, the quantizer the
next pass starts from.
"""

import copy
import dataclasses
import logging
import math
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from torch.nn import functional as F

from olivepress.progress import progress
from olivepress.quantization.groups import choose_group_size
from olivepress.quantization.layers import QuantPlan, linear_at, plan_quantization
from olivepress.quantization.options import HEURISTIC_ALGORITHMS, MixedPrecisionOptions
from olivepress.quantization.rtn import fake_quantize

ATTENTION_INPUTS = ("q_proj", "k_proj", "v_proj", "qkv_proj")
MLP_OUTPUTS = ("down_proj",)
_EPS = 1e-12

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Unit = tuple[str, ...]


def choose_mixed_precision(model: nn.Module, options: MixedPrecisionOptions, rows: torch.Tensor | None,
                           logger: logging.Logger) -> dict:
    """Olive's mixed_precision_info for `model` (float, on the CPU); `rows` [n, seq_len] are kld_gradient's tokens."""
    quant_plan = plan_quantization(model, [])
    if options.algorithm in HEURISTIC_ALGORITHMS:
        names = heuristic_names(model, quant_plan, options.algorithm)
        default: dict = {"bits": options.bits}
        high: dict = {"bits": options.high_bits}
    else:
        low, high_options = _fitted(model, quant_plan, options, logger)
        units = selection_units(quant_plan)
        scores = unit_scores(model, units, low, high_options, rows)
        names = promoted(units, {unit: _numel(model, unit) for unit in units}, scores, options.ratio or 0.0)
        default = {"bits": low.bits, "group_size": low.group_size, "symmetric": low.sym}
        high = {"bits": high_options.bits, "group_size": high_options.group_size, "symmetric": high_options.sym}
        logger.info("SelectiveMixedPrecision: %d of %d units at %d bits", len(names), len(units), options.high_bits)
    overrides = {name: dict(high) for name in names}
    head = _output_embeddings_name(model)
    if getattr(model.config, "tie_word_embeddings", False) and head in overrides:
        overrides[_input_embeddings_name(model)] = dict(high)  # as Olive: the tied embedding follows the head
    return {"default": default, "overrides": dict(sorted(overrides.items()))}


def heuristic_names(model: nn.Module, quant_plan: QuantPlan, algorithm: str) -> list[str]:
    """The LM head, plus (mlp_down) the down projections of the first and last eighth of the layers and every
    third layer between, plus (mlp_down_qkv) their q/k/v projections: Olive's k-quant style choice."""
    names = [_output_embeddings_name(model)]
    if algorithm == "high_precision_lm_head":
        return names
    wanted = MLP_OUTPUTS + (ATTENTION_INPUTS if algorithm == "high_precision_mlp_down_qkv" else ())
    count = len(quant_plan.layers)
    for index, layer_names in enumerate(quant_plan.layer_linears):
        if index < count / 8 or index >= 7 * count / 8 or (index - count // 8) % 3 == 2:
            names += [quant_plan.full_name(index, name) for name in layer_names if name.rsplit(".", 1)[-1] in wanted]
    return names


def selection_units(quant_plan: QuantPlan) -> list[Unit]:
    """Every linear of the model alone, except each layer's separate q/k/v projections, which form one unit."""
    units: list[Unit] = []
    for index, layer_names in enumerate(quant_plan.layer_linears):
        qkv = tuple(quant_plan.full_name(index, n) for n in layer_names if n.rsplit(".", 1)[-1] in ATTENTION_INPUTS[:3])
        units += [qkv] if qkv else []
        units += [(quant_plan.full_name(index, n),) for n in layer_names if quant_plan.full_name(index, n) not in qkv]
    return units + [(name,) for name in quant_plan.outer_linears]


def promoted(units: list[Unit], numels: dict[Unit, int], scores: dict[Unit, float], ratio: float) -> list[str]:
    """Units by ascending score (lower is more sensitive), promoted until their parameters reach (1 - ratio) of all."""
    threshold = sum(numels.values()) * (1 - ratio)
    names: list[str] = []
    total = 0
    for unit in sorted(units, key=scores.__getitem__):
        total += numels[unit]
        names += unit
        if total >= threshold:
            break
    return names


def unit_scores(model: nn.Module, units: list[Unit], low: MixedPrecisionOptions, high: MixedPrecisionOptions,
                rows: torch.Tensor | None) -> dict[Unit, float]:
    """Olive's score of each unit; lower is more sensitive."""
    if low.algorithm == "kld_gradient":
        if rows is None:
            raise ValueError("kld_gradient needs calibration rows")
        alignment = kld_alignments(model, [name for unit in units for name in unit], low, high, rows)
        return {unit: -sum(alignment[n] for n in unit) / (max(_numel(model, unit), 1) / 1e6) for unit in units}
    stats = {name: _weight_stats(linear_at(model, name).weight.detach().float(), low, high)
             for unit in units for name in unit}
    return {unit: _score(low.algorithm, [stats[name] for name in unit]) for unit in units}


def kld_alignments(model: nn.Module, names: list[str], low: MixedPrecisionOptions, high: MixedPrecisionOptions,
                   rows: torch.Tensor) -> dict[str, float]:
    """Per linear: sum(mean gradient * (w_low - w_high)), the gradient being that of KL(float || all-low-bit model)
    over each row's tokens, with respect to the low-bit weights (mlx-lm's dynamic quant, as Olive computes it)."""
    student = copy.deepcopy(model).float()
    for parameter in student.parameters():
        parameter.requires_grad_(False)
    weights = {}
    for name in names:
        weight = linear_at(student, name).weight
        weight.data = fake_quantize(weight.data, low.bits, low.group_size, low.sym)
        weight.requires_grad_(True)
        weights[name] = weight
    grads = {name: torch.zeros_like(weight) for name, weight in weights.items()}
    for row in progress(rows.split(1), desc="kld_gradient", unit="row"):
        with torch.no_grad():
            teacher = F.log_softmax(model(input_ids=row).logits.float(), dim=-1)
        student_log = F.log_softmax(student(input_ids=row).logits, dim=-1)
        (teacher.exp() * (teacher - student_log)).sum(-1).mean().backward()
        for name, weight in weights.items():
            grads[name] += cast(torch.Tensor, weight.grad)  # every linear feeds the logits
            weight.grad = None
    result = {}
    for name, weight in weights.items():
        source = linear_at(model, name).weight.detach().float()
        high_weight = fake_quantize(source, high.bits, high.group_size, high.sym)
        result[name] = float((grads[name] / rows.shape[0] * (weight.detach() - high_weight)).sum())
    return result


def _weight_stats(weight: torch.Tensor, low: MixedPrecisionOptions, high: MixedPrecisionOptions) -> dict[str, float]:
    low_error = weight - fake_quantize(weight, low.bits, low.group_size, low.sym)
    high_error = weight - fake_quantize(weight, high.bits, high.group_size, high.sym)
    return {"signal_sq": float(weight.pow(2).sum()), "noise_sq": float(low_error.pow(2).sum()),
            "high_noise_sq": float(high_error.pow(2).sum()), "iqe": float(low_error.pow(2).mean(-1).max()),
            "high_iqe": float(high_error.pow(2).mean(-1).max())}


def _score(algorithm: str, stats: list[dict[str, float]]) -> float:
    """Squared norms add up over a unit's members, the row-wise IQE takes their maximum (as over the fused weight)."""
    signal, noise, high_noise = (sum(s[key] for s in stats) for key in ("signal_sq", "noise_sq", "high_noise_sq"))
    iqe, high_iqe = (max(s[key] for s in stats) for key in ("iqe", "high_iqe"))
    if algorithm == "snr":
        return _snr_db(signal, noise)
    if algorithm == "snr_relative":
        return _snr_db(signal, noise) - _snr_db(signal, high_noise)
    if algorithm == "iqe":
        return 1.0 / (iqe + _EPS)
    return (1.0 / (iqe + _EPS)) / (1.0 / (high_iqe + _EPS))  # iqe_relative


def _snr_db(signal_sq: float, noise_sq: float) -> float:
    return 10 * math.log10(max(signal_sq, _EPS * _EPS) / max(noise_sq, _EPS * _EPS))


def _fitted(model: nn.Module, quant_plan: QuantPlan, options: MixedPrecisionOptions,
            logger: logging.Logger) -> tuple[MixedPrecisionOptions, MixedPrecisionOptions]:
    """The low and high settings with group sizes that divide every linear, as the next pass will fit them."""
    in_features = {name: linear_at(model, name).in_features for name in quant_plan.all_linears()}
    low = dataclasses.replace(options, group_size=choose_group_size(options.group_size, in_features, logger))
    high = dataclasses.replace(options, bits=options.high_bits, sym=options.high_sym,
                               group_size=choose_group_size(options.high_group_size, in_features, logger))
    return low, high


def _numel(model: nn.Module, unit: Unit) -> int:
    return sum(linear_at(model, name).weight.numel() for name in unit)


def _output_embeddings_name(model: nn.Module) -> str:
    return _name_of(model, cast("PreTrainedModel", model).get_output_embeddings())


def _input_embeddings_name(model: nn.Module) -> str:
    return _name_of(model, cast("PreTrainedModel", model).get_input_embeddings())


def _name_of(model: nn.Module, target: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is target)

