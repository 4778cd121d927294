"""The awq and gptq checkpoint layouts, exactly as the GenAI builder's readers unpack them
(onnxruntime_genai/models/loaders/awq.py, gptq.py and base.py).

Both pack integer codes into int32 words, lowest bits first. A `QuantizedWeight` holds the codes
unpacked: codes [out, in], zeros [out, groups] and scales [out, groups], with
weight = (code - zero) * scale.

awq (AutoAWQ "gemm"):  qweight int32 [in, out/8], qzeros int32 [groups, out/8], scales fp16 [groups, out];
                       packed along the output dimension, word nibble k holding column AWQ_ORDER[k]
                       of its block of 8; zeros stored as they are. 4 bits only.
gptq (AutoGPTQ v1):    qweight int32 [in*bits/32, out] packed along the input dimension,
                       qzeros int32 [groups, out*bits/32] packed along the output dimension and
                       stored as zero - 1 (modulo 2**bits), scales fp16 [groups, out],
                       g_idx int32 [in] (the group of each input channel). 4 or 8 bits.
"""

from dataclasses import dataclass

import torch

from olivepress.quantization.formats import FORMAT_BITS

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_INVERSE_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)


@dataclass
class QuantizedWeight:
    """A weight as integer codes with a scale and zero point per (output row, input group)."""

    codes: torch.Tensor  # uint8 [out, in]
    zeros: torch.Tensor  # uint8 [out, groups]
    scales: torch.Tensor  # float16 [out, groups]
    bits: int
    group_size: int

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        out_features, in_features = self.codes.shape
        codes = self.codes.to(dtype).view(out_features, -1, self.group_size)
        weight = (codes - self.zeros.to(dtype).unsqueeze(-1)) * self.scales.to(dtype).unsqueeze(-1)
        return weight.view(out_features, in_features)


def pack_int32(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack the last dimension, 32 // bits values to an int32 word, the first value in the lowest bits."""
    per_word = 32 // bits
    values = values.to(torch.int32).reshape(*values.shape[:-1], -1, per_word)
    packed = torch.zeros(values.shape[:-1], dtype=torch.int32, device=values.device)
    for index in range(per_word):
        packed |= values[..., index] << (index * bits)
    return packed


def unpack_int32(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """The inverse of `pack_int32`: int32 words to uint8 values along the last dimension."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=packed.device)
    values = (packed.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return values.reshape(*packed.shape[:-1], -1).to(torch.uint8)


def check_packable(fmt: str, bits: int, in_features: int, out_features: int, group_size: int) -> str | None:
    """Why a linear of this shape cannot be written in `fmt`, or None when it can."""
    if bits not in FORMAT_BITS[fmt]:
        return f"the {fmt} format holds {' or '.join(map(str, FORMAT_BITS[fmt]))}-bit weights, not {bits}-bit"
    per_word = 32 // bits
    if out_features % per_word:
        return f"out_features {out_features} is not a multiple of {per_word} ({bits}-bit codes per int32 word)"
    if in_features % group_size:
        return f"in_features {in_features} is not a multiple of group_size {group_size}"
    return None


def pack(fmt: str, weight: QuantizedWeight) -> dict[str, torch.Tensor]:
    """The checkpoint tensors (qweight, qzeros, scales and, for gptq, g_idx) of one linear."""
    scales = weight.scales.to(torch.float16).t().contiguous()
    if fmt == "awq":
        return {
            "qweight": _pack_awq(weight.codes.t(), weight.bits),
            "qzeros": _pack_awq(weight.zeros.t(), weight.bits),
            "scales": scales,
        }
    in_features = weight.codes.shape[1]
    stored_zeros = (weight.zeros.to(torch.int32) - 1) & ((1 << weight.bits) - 1)
    return {
        "qweight": pack_int32(weight.codes, weight.bits).t().contiguous(),
        "qzeros": pack_int32(stored_zeros.t(), weight.bits),
        "scales": scales,
        "g_idx": torch.arange(in_features, dtype=torch.int32, device=weight.codes.device) // weight.group_size,
    }


def unpack(fmt: str, tensors: dict[str, torch.Tensor], bits: int, group_size: int) -> QuantizedWeight:
    """The inverse of `pack`. A gptq g_idx must be the sequential one that `pack` writes."""
    scales = tensors["scales"].t()
    if fmt == "awq":
        codes = _unpack_awq(tensors["qweight"], bits).t()
        zeros = _unpack_awq(tensors["qzeros"], bits).t()
    else:
        codes = unpack_int32(tensors["qweight"].t(), bits)
        zeros = ((unpack_int32(tensors["qzeros"], bits).to(torch.int32) + 1) & ((1 << bits) - 1)).t()
    return QuantizedWeight(codes=codes.contiguous(), zeros=zeros.to(torch.uint8).contiguous(),
                           scales=scales.contiguous(), bits=bits, group_size=group_size)


def _pack_awq(values: torch.Tensor, bits: int) -> torch.Tensor:
    """values [rows, out] -> int32 [rows, out/8], word nibble k holding column AWQ_ORDER[k] of its block."""
    rows, columns = values.shape
    ordered = values.reshape(rows, columns // 8, 8)[..., list(AWQ_ORDER)]
    return pack_int32(ordered.reshape(rows, columns), bits)


def _unpack_awq(packed: torch.Tensor, bits: int) -> torch.Tensor:
    rows = packed.shape[0]
    nibbles = unpack_int32(packed, bits).reshape(rows, -1, 8)
    return nibbles[..., list(AWQ_INVERSE_ORDER)].reshape(rows, -1)
