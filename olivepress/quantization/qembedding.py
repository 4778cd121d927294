"""TiedQuantEmbedding: the input embedding of a model whose quantized LM head shares its table.

The GenAI builder (0.18) reads a quantized embedding in one shape only: tied to a quantized LM head, as a
GatherBlockQuantized over the head's MatMulNBits data (its `shared_embeddings`, on by default for a model with
`tie_word_embeddings`). So the checkpoint stores the table once, as the head's packed codes (`lm_head.qweight`,
...), with `tie_word_embeddings: true` and `quantization_config.embeds: true`; in torch the embedding looks its rows
up in the head's codes and dequantizes only those, times the scale a scaled embedding (Gemma's sqrt(hidden)) applies.
"""

import torch
from torch import nn

from olivepress.quantization.options import QuantizeOptions
from olivepress.quantization.qlinear import QuantLinear, set_submodule


class TiedQuantEmbedding(nn.Module):
    def __init__(self, head: QuantLinear, dtype: torch.dtype, padding_idx: int | None = None, scale: float = 1.0):
        super().__init__()
        # a tuple keeps the head out of this module's children and state_dict: the checkpoint holds it once, as lm_head
        self._head = (head,)
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features
        self.padding_idx = padding_idx
        self.dtype = dtype
        self.scale = scale

    @property
    def head(self) -> QuantLinear:
        return self._head[0]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        weight = self.head.quantized_weight()
        ids = input_ids.reshape(-1).to(weight.codes.device)
        groups = self.embedding_dim // weight.group_size
        codes = weight.codes[ids].to(self.dtype).view(-1, groups, weight.group_size)
        zeros = weight.zeros[ids].to(self.dtype).unsqueeze(-1)
        scales = weight.scales[ids].to(self.dtype).unsqueeze(-1)
        rows = ((codes - zeros) * scales).view(-1, self.embedding_dim)
        if self.scale != 1.0:
            rows = rows * torch.tensor(self.scale, dtype=self.dtype)  # rounded to the rows' dtype, as transformers does
        return rows.view(*input_ids.shape, self.embedding_dim)

    def _apply(self, fn, recurse=True):
        # .to(dtype) / .half() reach the head's buffers through the head itself; the rows follow the float dtype
        self.dtype = fn(torch.empty(0, dtype=self.dtype)).dtype
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, tied to the quantized LM head "
                f"({self.head.bits}-bit, group_size {self.head.group_size})")


def input_embeddings(model: nn.Module) -> nn.Module | None:
    get = getattr(model, "get_input_embeddings", None)
    return get() if get else None


def output_embeddings(model: nn.Module) -> nn.Module | None:
    get = getattr(model, "get_output_embeddings", None)
    return get() if get else None


def module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, each in model.named_modules() if each is module)


def ties_embeddings(model: nn.Module) -> bool:
    """Whether the model's config ties its input embedding to its LM head."""
    return bool(getattr(model.config, "tie_word_embeddings", False))


def tied_embedding_problem(model: nn.Module, options: QuantizeOptions) -> str | None:
    """Why the input embedding of `model` (quantized by `options`, group size fitted) cannot be quantized as the
    tied LM head's table, or None when it can: the model must tie them and the head be quantized with the
    settings the embedding asks for (Olive ties a quantized embedding and head only when their settings match)."""
    head, embedding = output_embeddings(model), input_embeddings(model)
    if head is None or embedding is None or not ties_embeddings(model):
        return ("the model does not tie its input embedding to its LM head (tie_word_embeddings), and the GenAI "
                "builder reads a quantized embedding only as the tied LM head's table (GatherBlockQuantized)")
    if not isinstance(head, QuantLinear):
        return "the LM head stays float, and the quantized embedding is the LM head's table: set lm_head: true"
    wanted = options.for_module(module_name(model, embedding))
    head_sym = options.for_module(module_name(model, head)).sym
    if (wanted.bits, wanted.group_size, wanted.sym) != (head.bits, head.group_size, head_sym):
        return (f"the embedding asks for bits {wanted.bits}, group_size {wanted.group_size}, sym {wanted.sym} and the "
                f"LM head has bits {head.bits}, group_size {head.group_size}, sym {head_sym}; the tied table is "
                f"quantized once, so they must match (overrides)")
    return None


def tie_quantized_embedding(model: nn.Module, dtype: torch.dtype) -> None:
    """Make the input embedding read the quantized LM head's table; the config in memory stops asking transformers
    to tie them, as the head holds no float weight to share."""
    head, embedding = output_embeddings(model), input_embeddings(model)
    assert isinstance(head, QuantLinear) and embedding is not None  # tied_embedding_problem was None
    padding_idx = getattr(embedding, "padding_idx", None)
    scale = float(getattr(embedding, "scalar_embed_scale", 1.0))  # transformers' scaled embeddings (Gemma)
    set_submodule(model, module_name(model, embedding), TiedQuantEmbedding(head, dtype, padding_idx, scale))
    model.config.tie_word_embeddings = False  # type: ignore[union-attr]
    setattr(model, "all_tied_weights_keys", {})  # noqa: B010 (transformers reads it when it ties weights)
