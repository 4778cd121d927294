"""GPTQ (Frantar et al., 2022): quantize a weight column by column, pushing each column's rounding error
onto the columns not yet quantized through the inverse Hessian of the layer's inputs.

With act order (desc_act) columns are visited by decreasing Hessian diagonal. The group parameters are
then computed up front from the weight in its original column order ("static groups"), so the stored
groups stay contiguous, g_idx stays sequential, and the GenAI builder's MatMulNBits needs no g_idx.
With `apply_clip`, each group's range is first shrunk to the one with the least output error (olivepress.
quantization.clip, as AWQ does) before its scale and zero point are chosen.
"""

import contextlib
import logging
from collections.abc import Iterator

import torch

from olivepress.quantization.clip import clip_weight
from olivepress.quantization.options import GptqOptions
from olivepress.quantization.packing import QuantizedWeight
from olivepress.quantization.rtn import group_params, quantize_codes

logger = logging.getLogger("olivepress")


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, options: GptqOptions) -> QuantizedWeight:
    """Quantize a [out, in] weight given H = E[x^T x] of its inputs [in, in]."""
    with _one_cpu_thread(weight.device):
        return _gptq(weight, hessian, options)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """The column loop works on single columns: on the CPU, handing them to more threads costs more than it saves
    (several times over when other processes share the cores)."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _gptq(weight: torch.Tensor, hessian: torch.Tensor, options: GptqOptions) -> QuantizedWeight:
    bits, group_size = options.bits, options.group_size
    out_features, in_features = weight.shape
    groups = in_features // group_size
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    scales = torch.zeros(out_features, groups, device=W.device)
    zeros = torch.zeros(out_features, groups, device=W.device)
    group_of = [column // group_size for column in range(in_features)]  # by position in the visiting order
    if options.desc_act:
        ranges = _clipped(W, H, options) if options.apply_clip else W
        scales, zeros = group_params(ranges.reshape(out_features, groups, group_size), bits, options.sym)
        order = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, order], H[order][:, order]
        group_of = [column // group_size for column in order.tolist()]
    Hinv = _upper_cholesky_of_inverse(H, options.damp_percent)

    codes = torch.zeros(out_features, in_features, device=W.device)
    for start in range(0, in_features, options.block_size):
        end = min(start + options.block_size, in_features)
        W1 = W[:, start:end].clone()
        errors = torch.zeros_like(W1)
        Hinv1 = Hinv[start:end, start:end]
        for i in range(end - start):
            column = start + i
            group = group_of[column]
            if not options.desc_act and column % group_size == 0:
                # the group's current values: this block's updated columns, then any beyond the block
                upcoming = torch.cat([W1[:, i:i + group_size], W[:, end:column + group_size]], dim=1)
                if options.apply_clip:
                    upcoming = _clipped(upcoming, H[column:column + group_size, column:column + group_size], options)
                scales[:, group], zeros[:, group] = group_params(upcoming, bits, options.sym)
            w = W1[:, i]
            code = quantize_codes(w.unsqueeze(1), scales[:, group], zeros[:, group], bits).squeeze(1)
            codes[:, column] = code
            error = (w - (code - zeros[:, group]) * scales[:, group]) / Hinv1[i, i]
            W1[:, i:] -= error.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            errors[:, i] = error
        W[:, end:] -= errors @ Hinv[start:end, end:]
    if options.desc_act:
        codes = codes[:, torch.argsort(order)]
    return QuantizedWeight(codes=codes.to(torch.uint8), zeros=zeros.to(torch.uint8), scales=scales.to(torch.float16),
                           bits=bits, group_size=group_size)


def _clipped(weight: torch.Tensor, hessian: torch.Tensor, options: GptqOptions) -> torch.Tensor:
    return clip_weight(weight, hessian, options.bits, options.group_size, options.sym)


def _upper_cholesky_of_inverse(H: torch.Tensor, damp_percent: float) -> torch.Tensor:
    """The upper Cholesky factor of (H + damp I)^-1; the damping grows tenfold while H is not positive definite."""
    damp = damp_percent * torch.mean(torch.diag(H))
    identity = torch.eye(H.shape[0], device=H.device)
    for _ in range(5):
        try:
            lower = torch.linalg.cholesky(H + damp * identity)
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
        except torch.linalg.LinAlgError:
            logger.warning("GPTQ: the Hessian is not positive definite with damping %.3g; trying %.3g", damp, damp * 10)
            damp = damp * 10
    raise RuntimeError("GPTQ: the Hessian stayed singular after increasing the damping 10000-fold")
