"""Round-to-nearest quantization of a weight, group by group, and the group parameters that AWQ and
GPTQ share with it.

Asymmetric groups span [min(w, 0), max(w, 0)] so that zero stays representable; symmetric groups
span [-max|w|, max|w|] with the zero point in the middle (2**(bits-1)), as GPTQ does. Scales are
rounded up to float16, the checkpoint's scale type, before the codes are computed from them, so that
every dequantized value lies within half a step of the original.
"""

import torch

from olivepress.quantization.packing import QuantizedWeight

MIN_SCALE = 2.0**-14  # the smallest normal float16


def group_params(weight: torch.Tensor, bits: int, sym: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and zero points (float32, both [...]) of groups laid out along the last dimension of `weight`."""
    max_code = 2**bits - 1
    if sym:
        scales = weight.abs().amax(dim=-1) * 2 / max_code
        zeros = torch.full_like(scales, 2 ** (bits - 1))
    else:
        low = weight.amin(dim=-1).clamp(max=0)
        high = weight.amax(dim=-1).clamp(min=0)
        scales = (high - low) / max_code
    scales = _float16_ceiling(scales.clamp(min=MIN_SCALE))
    if not sym:
        zeros = torch.round(-low / scales).clamp(0, max_code)
    return scales, zeros


def quantize_codes(weight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes of `weight` [..., n] under per-row `scales`/`zeros` [...]."""
    codes = torch.round(weight / scales.unsqueeze(-1)) + zeros.unsqueeze(-1)
    return codes.clamp(0, 2**bits - 1)


def quantize_rtn(weight: torch.Tensor, bits: int, group_size: int, sym: bool) -> QuantizedWeight:
    """Round-to-nearest quantization of a [out, in] weight in groups of `group_size` input channels."""
    out_features, in_features = weight.shape
    grouped = weight.float().reshape(out_features, in_features // group_size, group_size)
    scales, zeros = group_params(grouped, bits, sym)
    codes = quantize_codes(grouped, scales, zeros, bits)
    return QuantizedWeight(codes=codes.reshape(out_features, in_features).to(torch.uint8), zeros=zeros.to(torch.uint8),
                           scales=scales.to(torch.float16), bits=bits, group_size=group_size)


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int, sym: bool) -> torch.Tensor:
    """quantize_rtn then dequantize, in float32: what a [out, in] weight becomes."""
    out_features, in_features = weight.shape
    grouped = weight.float().reshape(out_features, in_features // group_size, group_size)
    return fake_quantize_groups(grouped, bits, sym).reshape(out_features, in_features)


def fake_quantize_groups(grouped: torch.Tensor, bits: int, sym: bool) -> torch.Tensor:
    """What each group (along the last dimension) becomes under round-to-nearest quantization."""
    scales, zeros = group_params(grouped, bits, sym)
    codes = quantize_codes(grouped, scales, zeros, bits)
    return (codes - zeros.unsqueeze(-1)) * scales.unsqueeze(-1)


def _float16_ceiling(values: torch.Tensor) -> torch.Tensor:
    """The float16 values nearest `values` (positive) from above, as float32, so a group's range never exceeds its
    codes. For a positive float16, the next larger one has the next larger bit pattern."""
    rounded = values.to(torch.float16)
    below = rounded.float() < values
    raised = (rounded.view(torch.int16) + 1).view(torch.float16)
    return torch.where(below, raised, rounded).float()
