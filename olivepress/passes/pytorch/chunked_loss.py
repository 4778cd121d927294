"""The causal-LM loss without batch x sequence x vocabulary logits: the LM head and the cross-entropy run over
chunks of positions, forward and backward, so training holds one chunk's logits at a time.

A plain Linear head (or an int4 QuantLinear one, dequantized once) takes the fused path (`LinearCrossEntropy`):
each chunk's gradient is computed in the forward pass, while its logits are at hand, and only [positions, hidden]
gradients are kept for the backward pass. Any other head (LoRA on lm_head, modules_to_save) runs chunk by chunk
under activation checkpointing.
"""

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from olivepress.data.tokens import IGNORE_INDEX
from olivepress.quantization.qlinear import QuantLinear

CHUNK_LOGITS = 2**22  # logits per chunk: 16 MB in float32 (110 MB less peak than 64 MB chunks, as fast)
# Architectures whose causal-LM forward is `lm_head(decoder(...))` followed by the plain shifted cross-entropy
# (no logit scaling or soft-capping, no auxiliary losses), so the loss may be computed from the decoder's output.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "phi", "gemma"})


class LinearCrossEntropy(torch.autograd.Function):
    """sum over rows of cross_entropy(hidden @ weight.T + bias, labels) / divisor, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, labels: torch.Tensor,
                divisor: float) -> torch.Tensor:
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.zeros_like(hidden) if needs_hidden else None
        grad_weight = torch.zeros_like(weight) if needs_weight else None
        grad_bias = torch.zeros_like(bias) if needs_bias and bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        rows = max(1, CHUNK_LOGITS // weight.shape[0])
        for start in range(0, hidden.shape[0], rows):
            chunk, targets = hidden[start:start + rows], labels[start:start + rows]
            log_probs = torch.log_softmax(F.linear(chunk, weight, bias).float(), dim=-1)
            picked = torch.arange(len(targets), device=targets.device), targets
            total -= log_probs[picked].sum()
            if not (needs_hidden or needs_weight or needs_bias):
                continue
            grad_logits = log_probs.exp_()  # d(loss sum)/d(logits) = softmax - one-hot
            grad_logits[picked] -= 1
            if grad_hidden is not None:
                grad_hidden[start:start + rows] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += grad_logits.T @ chunk
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
        ctx.divisor = divisor
        ctx.save_for_backward(*(grad for grad in (grad_hidden, grad_weight, grad_bias) if grad is not None))
        ctx.present = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
        return total / divisor

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        saved = iter(ctx.saved_tensors)
        scale = grad_output / ctx.divisor
        grads = [next(saved) * scale.to(torch.float32) if present else None for present in ctx.present]
        return (*grads, None, None)


def chunked_head_loss(hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor, divisor: float) -> torch.Tensor:
    """The same loss for any head module: each chunk's logits are rebuilt in the backward pass."""
    total = hidden.new_zeros((), dtype=torch.float32)
    rows = max(1, CHUNK_LOGITS // head_vocabulary(head))
    for start in range(0, hidden.shape[0], rows):
        total = total + checkpoint(_chunk_loss_sum, head, hidden[start:start + rows], labels[start:start + rows],
                                   use_reentrant=False)
    return total / divisor


def _chunk_loss_sum(head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), labels, reduction="sum")


def head_vocabulary(head: nn.Module) -> int:
    return int(getattr(head, "out_features", 0)) or int(next(p for p in head.parameters()).shape[0])


def causal_lm_loss(hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor,
                   num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """transformers' causal-LM loss (labels shifted left by one, IGNORE_INDEX skipped; a mean over the counted
    labels, or a sum divided by `num_items_in_batch` when given) from the decoder's last hidden states."""
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    counted = shifted != IGNORE_INDEX
    rows, targets = hidden.reshape(-1, hidden.shape[-1])[counted], shifted[counted]
    divisor = float(num_items_in_batch) if num_items_in_batch is not None else float(len(targets))
    if type(head) is nn.Linear:
        return LinearCrossEntropy.apply(rows, head.weight, head.bias, targets, divisor)
    if isinstance(head, QuantLinear):  # frozen: dequantized once for all the chunks
        bias = None if head.bias is None else head.bias.to(rows.dtype)
        return LinearCrossEntropy.apply(rows, head.dequantize(rows.dtype), bias, targets, divisor)
    return chunked_head_loss(rows, head, targets, divisor)


def decoder_and_head(causal_lm: Any) -> tuple[nn.Module, nn.Module] | None:
    """The decoder and LM head of a Hugging Face causal LM whose loss `causal_lm_loss` reproduces; else None."""
    if getattr(causal_lm.config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    head = causal_lm.get_output_embeddings()
    return (causal_lm.get_decoder(), head) if head is not None else None
