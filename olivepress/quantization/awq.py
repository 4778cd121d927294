"""AWQ: activation-aware weight quantization (Lin et al., 2023), after llm-awq / AutoAWQ.

For each group of linears that read the same input (q/k/v, gate/up, and o_proj and down_proj where
the op before them can absorb a scale), a per-input-channel scale s = mean|x|^a / mean|w|^(1-a)
(duo scaling; mean|x|^a without it) is searched over a grid of a in [0, 1). The weights are multiplied
by s and the op that produces their input (the RMSNorm, or v_proj / up_proj) divides by s, so the
float model is unchanged while salient input channels get finer quantization steps. Then each linear's
groups are clipped to the shrink of their range that quantizes best (not for q/k, whose errors the
attention scores amplify), and the result is quantized round-to-nearest.

The loss of a candidate is the output error of the group's linears over all calibration tokens,
sum ||x (W_q - W)^T||^2 = trace(D H D^T) with D = W_q - W and H = E[x^T x]: exact, and computed from H
without another pass over the activations. The identity scale is a candidate too, so the search never
ends worse than plain round-to-nearest on that loss.
"""

from dataclasses import dataclass

import torch
from torch import nn

from olivepress.quantization.clip import clip_weight
from olivepress.quantization.gptq import gptq_quantize
from olivepress.quantization.layers import linear_at, weight_of
from olivepress.quantization.layerwise import InputStats
from olivepress.quantization.options import AwqOptions, GptqOptions
from olivepress.quantization.packing import QuantizedWeight
from olivepress.quantization.rtn import fake_quantize, quantize_rtn

QUERY_KEY_LINEARS = ("q_proj", "k_proj", "qkv_proj")


@dataclass(frozen=True)
class ScaleGroup:
    prev: str  # the module whose output is the linears' input: a norm, or a linear
    linears: tuple[str, ...]
    prev_rows: slice | None = None  # for a fused linear before them (qkv_proj, gate_up_proj): the rows that feed them


def scale_groups(layer: nn.Module, linear_names: list[str]) -> list[ScaleGroup]:
    """The groups whose input scale can be folded into the op before them, for Llama-, Phi-3- and Gemma-style
    layers (separate or fused q/k/v and gate/up projections)."""
    modules = dict(layer.named_modules())
    present = set(linear_names)

    def first_present(*options: tuple[str, ...]) -> tuple[str, ...]:
        return next((names for names in options if set(names) <= present), ())

    groups = []
    attention_in = first_present(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("self_attn.qkv_proj",))
    if attention_in and norm_offset(modules.get("input_layernorm")) is not None:
        groups.append(ScaleGroup("input_layernorm", attention_in))
    if "self_attn.o_proj" in present:
        width = modules["self_attn.o_proj"].in_features
        if "self_attn.v_proj" in present and modules["self_attn.v_proj"].out_features == width:
            groups.append(ScaleGroup("self_attn.v_proj", ("self_attn.o_proj",)))
        elif "self_attn.qkv_proj" in present and modules["self_attn.qkv_proj"].out_features == 3 * width:
            groups.append(ScaleGroup("self_attn.qkv_proj", ("self_attn.o_proj",), slice(2 * width, 3 * width)))
    mlp_in = first_present(("mlp.gate_proj", "mlp.up_proj"), ("mlp.gate_up_proj",))
    # Gemma 2/3 normalize the attention output with post_attention_layernorm and the MLP input with another norm
    mlp_norm = "pre_feedforward_layernorm" if "pre_feedforward_layernorm" in modules else "post_attention_layernorm"
    if mlp_in and norm_offset(modules.get(mlp_norm)) is not None:
        groups.append(ScaleGroup(mlp_norm, mlp_in))
    if "mlp.down_proj" in present:
        width = modules["mlp.down_proj"].in_features
        if "mlp.up_proj" in present and modules["mlp.up_proj"].out_features == width:
            groups.append(ScaleGroup("mlp.up_proj", ("mlp.down_proj",)))
        elif "mlp.gate_up_proj" in present and modules["mlp.gate_up_proj"].out_features == 2 * width:
            groups.append(ScaleGroup("mlp.gate_up_proj", ("mlp.down_proj",), slice(width, 2 * width)))
    return groups


def awq_quantize_layer(layer: nn.Module, linear_names: list[str], stats: dict[str, InputStats],
                       options: AwqOptions) -> dict[str, QuantizedWeight]:
    """Search and fold the scales of one decoder layer (in place), clip, and quantize its linears."""
    groups = scale_groups(layer, linear_names)
    # every search sees the unscaled layer, as in AutoAWQ; the scales are folded in afterwards
    found = [search_scales([linear_at(layer, name).weight for name in group.linears], stats[group.linears[0]], options)
             for group in groups]
    input_scales: dict[str, torch.Tensor] = {}
    for group, scales in zip(groups, found, strict=True):
        fold_scales(layer, group, scales)
        input_scales.update({name: scales for name in group.linears})
    quantized = {}
    for name in linear_names:
        weight = linear_at(layer, name).weight.detach().float()
        hessian = stats[name].hessian
        if name in input_scales:  # the scaled weight's inputs are x / s
            scales = input_scales[name]
            hessian = hessian / (scales.unsqueeze(1) * scales.unsqueeze(0))
        if options.gptq_rounding:
            quantized[name] = gptq_quantize(weight, hessian, gptq_rounding_options(options))
            continue
        if options.apply_clip and name.rsplit(".", 1)[-1] not in QUERY_KEY_LINEARS:
            weight = clip_weight(weight, hessian, options.bits, options.group_size, options.sym, options.n_grid)
        quantized[name] = quantize_rtn(weight, options.bits, options.group_size, options.sym)
    return quantized


def gptq_rounding_options(options: AwqOptions) -> GptqOptions:
    """GPTQ's rounding of the scaled weights, with its defaults and static groups (contiguous, as awq stores them)."""
    return GptqOptions(bits=options.bits, group_size=options.group_size, sym=options.sym,
                       modules_to_not_convert=options.modules_to_not_convert, damp_percent=0.01, desc_act=True,
                       block_size=128, apply_clip=options.apply_clip)


def search_scales(weights: list[torch.Tensor], stats: InputStats, options: AwqOptions) -> torch.Tensor:
    """The per-input-channel scale with the least output error of these linears (which share an input)."""
    weight = torch.cat([w.detach().float() for w in weights])
    hessian = stats.hessian
    x_mean = stats.abs_mean
    grouped = weight.abs().reshape(-1, options.group_size)
    w_mean = (grouped / grouped.amax(dim=1, keepdim=True).clamp(min=1e-12)).reshape(weight.shape).mean(0)

    def loss(scales: torch.Tensor) -> float:
        error = fake_quantize(weight * scales, options.bits, options.group_size, options.sym) / scales - weight
        return float(((error @ hessian) * error).sum())

    best_scales = torch.ones_like(x_mean)
    best_loss = loss(best_scales)
    for step in range(options.n_grid):
        ratio = step / options.n_grid
        if options.duo_scaling:
            scales = x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)
        else:
            scales = x_mean.pow(ratio)
        scales = scales.clamp(min=1e-4)
        scales = scales / (scales.max() * scales.min()).sqrt()
        candidate = loss(scales)
        if candidate < best_loss:
            best_loss, best_scales = candidate, scales
    return best_scales


def fold_scales(layer: nn.Module, group: ScaleGroup, scales: torch.Tensor) -> None:
    """Multiply the group's weights by `scales` along their input channels and divide the producing op's output
    by them: the layer computes the same function."""
    prev = layer.get_submodule(group.prev)
    prev_weight, prev_bias = weight_of(prev), getattr(prev, "bias", None)
    rows = group.prev_rows if group.prev_rows is not None else slice(None)
    with torch.no_grad():
        if isinstance(prev, nn.Linear):
            prev_weight[rows] /= scales.unsqueeze(1)
        else:  # a norm computing n(x) * (offset + weight): the new weight makes (offset + weight) / scales
            offset = norm_offset(prev) or 0.0
            prev_weight[rows] = (prev_weight[rows] + offset) / scales - offset
        if prev_bias is not None:
            prev_bias[rows] /= scales
        for name in group.linears:
            linear_at(layer, name).weight.mul_(scales)


def norm_offset(module: nn.Module | None) -> float | None:
    """The offset c of a norm computing n(x) * (c + weight) (+ bias): 0 for RMSNorm and LayerNorm, 1 for Gemma's
    RMSNorm; None for a module not of that form, whose output an input scale cannot be folded into. Measured by
    running the module on a probe with its weight set to 0, 1 and 2 (and no bias)."""
    if module is None or isinstance(module, nn.Linear) or not isinstance(getattr(module, "weight", None), torch.Tensor):
        return None
    weight = weight_of(module)
    if weight.dim() != 1:
        return None
    bias = getattr(module, "bias", None)
    saved = [(tensor, tensor.detach().clone()) for tensor in (weight, bias) if isinstance(tensor, torch.Tensor)]
    probe = torch.randn(4, weight.shape[0], generator=torch.Generator().manual_seed(0)).to(weight)
    outputs = []
    with torch.no_grad():
        try:
            for tensor, _ in saved:
                tensor.zero_()
            for value in (0.0, 1.0, 2.0):
                weight.fill_(value)
                outputs.append(module(probe).float())
        finally:
            for tensor, original in saved:
                tensor.copy_(original)
    at_zero, at_one, at_two = outputs
    normalized = at_one - at_zero
    if not torch.allclose(at_two - at_one, normalized, atol=1e-4) or float(normalized.abs().max()) == 0:
        return None
    offset = float((at_zero * normalized).sum() / (normalized * normalized).sum())
    return offset if torch.allclose(at_zero, offset * normalized, atol=1e-4) else None
