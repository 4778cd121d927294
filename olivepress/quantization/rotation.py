"""QuaRot's rotations of a decoder-only causal LM (https://arxiv.org/abs/2404.00456), offline only, as Olive's QuaRot
pass does them: the model computes the same function in exact arithmetic, and its linears' weights lose their
outliers, so that a following weight quantizer loses less.

With x the residual stream (a row vector) and a linear computing x @ W.T:
- each RMSNorm's weight is multiplied into the columns of the linears it feeds, and set to ones;
- R1, an orthogonal matrix of the hidden size, rotates the residual stream: the embedding becomes E @ R1, each linear
  that reads the stream (q/k/v, gate/up, the LM head) W @ R1, each that writes it (o_proj, down_proj) R1.T @ W and
  its bias b @ R1. RMSNorm with unit weight commutes with an orthogonal matrix, so every norm sees the same lengths;
- R2, one per layer of the head size, rotates each value head: v_proj's rows head by head (R2.T @ W_h, b_h @ R2) and
  o_proj's columns head by head (W_h @ R2). Attention mixes value rows with weights that sum to one, so the rotation
  passes through it; queries and keys are untouched, and so are RoPE and Qwen3's q/k norms.
Tied embeddings are untied first: the LM head takes the final norm's weight, the embedding does not.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import torch
from torch import nn

from olivepress.errors import OlivepressError
from olivepress.quantization.layers import linear_at, weight_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel

RotateMode = Literal["hadamard", "random"]


@dataclass(frozen=True)
class DecoderLayout:
    """Where a decoder layer keeps its norms and linears (names relative to the layer)."""

    attention_inputs: tuple[str, ...]
    attention_output: str
    mlp_inputs: tuple[str, ...]
    mlp_output: str
    fused_qkv: bool  # the values are the last rows of the one attention input (Phi-3's qkv_proj)
    first_norm: str = "input_layernorm"
    second_norm: str = "post_attention_layernorm"


LLAMA = DecoderLayout(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn.o_proj",
                      ("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj", fused_qkv=False)
PHI3 = DecoderLayout(("self_attn.qkv_proj",), "self_attn.o_proj", ("mlp.gate_up_proj",), "mlp.down_proj", fused_qkv=True)

# transformers model_type -> layout. Each has pre-norm RMSNorm layers (x * weight) between residual additions and
# nothing else on the residual stream; LayerNorm models (mean subtraction, bias) and Gemma 2/3 (norms after attention
# and MLP, on the residual branch) are not rotatable this way.
LAYOUTS = {"llama": LLAMA, "mistral": LLAMA, "qwen2": LLAMA, "qwen3": LLAMA, "phi3": PHI3}


def layout_of(model_type: str | None, where: str) -> DecoderLayout:
    """The layout of `model_type`; any other is refused in one line naming `where` and the supported ones."""
    try:
        return LAYOUTS[str(model_type)]
    except KeyError:
        raise OlivepressError(f"{where}: QuaRot does not rotate model_type '{model_type}'; it rotates "
                              f"{', '.join(sorted(LAYOUTS))}") from None


def hadamard_matrix(order: int) -> torch.Tensor:
    """A Hadamard matrix (entries +-1, H @ H.T = order * I, float64): Sylvester's doubling of a Paley matrix (or of
    [1]), as QuaRot builds its orders 2**k * K. Refused for an order with no such construction."""
    odd = order
    while odd % 2 == 0:
        odd //= 2
    base_order = odd
    while base_order <= order:
        base = _paley(base_order)
        if base is not None:
            matrix = base
            while matrix.shape[0] < order:
                matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
            return matrix
        base_order *= 2
    raise OlivepressError(f"QuaRot: no Hadamard matrix of order {order} is built here (orders 2**k times 1 or a Paley "
                          "order q+1 or 2(q+1), q prime); set rotate_mode 'random' for a random orthogonal matrix")


def _paley(order: int) -> torch.Tensor | None:
    """[1] for order 1; Paley's construction I (order q+1, q a prime = 3 mod 4) or II (order 2(q+1), q a prime = 1
    mod 4); else None."""
    if order == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    for q, kind in ((order - 1, 3), (order // 2 - 1, 1)):
        if kind == 1 and order % 2:
            continue
        if q > 2 and _is_prime(q) and q % 4 == kind:
            residues = {(i * i) % q for i in range(1, q)}
            jacobsthal = torch.tensor([[0.0 if i == j else (1.0 if (j - i) % q in residues else -1.0)
                                        for j in range(q)] for i in range(q)], dtype=torch.float64)
            core = torch.zeros(q + 1, q + 1, dtype=torch.float64)
            core[1:, 1:] = jacobsthal
            core[0, 1:] = 1
            core[1:, 0] = -1 if kind == 3 else 1
            if kind == 3:  # core is skew with core @ core.T = q * I
                return core + torch.eye(q + 1, dtype=torch.float64)
            # core is symmetric with zero diagonal: zeros become [[1, -1], [-1, -1]], +-1 become +-[[1, 1], [1, -1]]
            zero_block = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
            sign_block = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
            return torch.kron(torch.eye(q + 1, dtype=torch.float64), zero_block) + torch.kron(core, sign_block)
    return None


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def orthogonal_matrix(size: int, mode: RotateMode, generator: torch.Generator) -> torch.Tensor:
    """A random orthogonal matrix (float64): 'hadamard', a Hadamard matrix with random signs on its rows, scaled by
    1/sqrt(size) (QuaRot's randomized Hadamard transform); 'random', the Q of a Gaussian matrix's QR, signs fixed so
    that it is Haar-distributed."""
    if mode == "hadamard":
        signs = torch.randint(0, 2, (size,), generator=generator).to(torch.float64) * 2 - 1
        return signs[:, None] * hadamard_matrix(size) / math.sqrt(size)
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))[None, :]


def outlier_ratio(weight: torch.Tensor) -> float:
    """max |w| / rms(w): how far a weight's largest entry stands out, what a quantization step has to cover."""
    weight = weight.detach().double()
    return float(weight.abs().max() / weight.pow(2).mean().sqrt())


def rotate_model(model: "PreTrainedModel", mode: RotateMode, seed: int) -> None:
    """Rotate a loaded causal LM in place (see the module's docstring); the math runs in float64 per tensor."""
    config = model.config
    layout = layout_of(getattr(config, "model_type", None), type(model).__name__)
    hidden = config.hidden_size
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    embedding = cast(nn.Embedding, model.get_input_embeddings())
    lm_head = cast(nn.Linear, model.get_output_embeddings())
    if lm_head.weight is embedding.weight:
        lm_head.weight = nn.Parameter(embedding.weight.detach().clone())
    config.tie_word_embeddings = False
    layers = cast(nn.ModuleList, model.get_submodule("model.layers"))
    for layer in layers:
        _fuse_norm(layer.get_submodule(layout.first_norm), [linear_at(layer, n) for n in layout.attention_inputs])
        _fuse_norm(layer.get_submodule(layout.second_norm), [linear_at(layer, n) for n in layout.mlp_inputs])
    _fuse_norm(model.get_submodule("model.norm"), [lm_head])

    generator = torch.Generator().manual_seed(seed)
    r1 = orthogonal_matrix(hidden, mode, generator)
    _set(embedding.weight, _rotate_columns(weight_of(embedding), r1))
    _rotate_input(lm_head, r1)
    for layer in layers:
        r2 = orthogonal_matrix(head_dim, mode, generator)
        for name in layout.attention_inputs + layout.mlp_inputs:
            _rotate_input(linear_at(layer, name), r1)
        value = linear_at(layer, layout.attention_inputs[-1])
        _rotate_output(value, r2, first_row=(heads + kv_heads) * head_dim if layout.fused_qkv else 0)
        output = linear_at(layer, layout.attention_output)
        _rotate_input(output, r2)
        _rotate_output(output, r1)
        _rotate_output(linear_at(layer, layout.mlp_output), r1)


def _fuse_norm(norm: nn.Module, linears: list[nn.Linear]) -> None:
    gamma = weight_of(norm).detach().double()
    for linear in linears:
        _set(linear.weight, linear.weight.detach().double() * gamma)
    _set(weight_of(norm), torch.ones_like(gamma))


def _rotate_columns(weight: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """weight @ rotation, block by block along the columns when the rotation is smaller (one block per head)."""
    rows, columns = weight.shape
    size = rotation.shape[0]
    return (weight.detach().double().reshape(rows, columns // size, size) @ rotation).reshape(rows, columns)


def _rotate_input(linear: nn.Linear, rotation: torch.Tensor) -> None:
    _set(linear.weight, _rotate_columns(linear.weight, rotation))


def _rotate_output(linear: nn.Linear, rotation: torch.Tensor, first_row: int = 0) -> None:
    """Rotate the outputs from `first_row` on (block by block when the rotation is smaller): rotation.T @ W, b @ R."""
    weight = linear.weight.detach().double()
    weight[first_row:] = _rotate_columns(weight[first_row:].T, rotation).T
    _set(linear.weight, weight)
    if linear.bias is not None:
        bias = linear.bias.detach().double()
        bias[first_row:] = _rotate_columns(bias[first_row:, None].T, rotation)[0]
        _set(linear.bias, bias)


def _set(parameter: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        parameter.copy_(value.to(parameter.dtype))
