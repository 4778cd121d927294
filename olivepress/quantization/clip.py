"""Clipping search: the part of each group's weight range worth representing.

Shrinking a group's range clips its largest weights but gives all the others finer steps. For each
(row, group), the shrink over a grid down to half the range (as in AWQ) with the least output error of
that group's slice of the layer, d H_gg d^T for the weight change d and the group's block H_gg of
H = E[x^T x], is kept. AWQ clips before rounding; GPTQ clips before choosing its group parameters.
"""

import torch

from olivepress.quantization.rtn import fake_quantize_groups

MAX_SHRINK = 0.5


def clip_weight(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int, sym: bool,
                n_grid: int = 20) -> torch.Tensor:
    """`weight` [out, in] with each (row, group) clamped to its best range; `hessian` is [in, in]."""
    out_features, in_features = weight.shape
    groups = in_features // group_size
    grouped = weight.reshape(out_features, groups, group_size)
    blocks = torch.stack([hessian[g * group_size:(g + 1) * group_size, g * group_size:(g + 1) * group_size]
                          for g in range(groups)])
    original_max = grouped.abs().amax(dim=-1, keepdim=True)
    best_max = original_max.clone()
    best_error = torch.full((out_features, groups, 1), float("inf"), device=weight.device)
    for step in range(int(MAX_SHRINK * n_grid)):
        max_val = original_max * (1 - step / n_grid)
        clipped = torch.clamp(grouped, -max_val, max_val)
        error = (fake_quantize_groups(clipped, bits, sym) - grouped).transpose(0, 1)  # [groups, out, group_size]
        loss = (torch.bmm(error, blocks) * error).sum(-1).t().unsqueeze(-1)
        better = loss < best_error
        best_error = torch.where(better, loss, best_error)
        best_max = torch.where(better, max_val, best_max)
    return torch.clamp(grouped, -best_max, best_max).reshape(out_features, in_features)
