"""The chunked causal-LM loss equals transformers' full-logits loss, in value and gradients, without ever
building a positions x vocabulary tensor."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from olivepress.data.tokens import IGNORE_INDEX
from olivepress.passes.pytorch import chunked_loss
from olivepress.passes.pytorch.chunked_loss import LinearCrossEntropy, causal_lm_loss, decoder_and_head
from olivepress.quantization.qlinear import QuantLinear
from olivepress.quantization.rtn import quantize_rtn

VOCAB, HIDDEN, ROWS = 97, 16, 40


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operation produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunked_loss, "CHUNK_LOGITS", 7 * VOCAB)  # 7 rows per chunk: 6 chunks, the last one short


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [tensor.detach().clone().requires_grad_(True) for tensor in tensors]


def test_fused_loss_and_gradients_equal_the_full_cross_entropy(small_chunks):
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(ROWS, HIDDEN), torch.randn(VOCAB, HIDDEN) / 4, torch.randn(VOCAB)
    labels = torch.randint(0, VOCAB, (ROWS,))
    full = leaves(hidden, weight, bias)
    expected = F.cross_entropy(F.linear(*full), labels, reduction="sum") / 25.0
    expected.backward(torch.tensor(3.0))
    fused = leaves(hidden, weight, bias)
    loss = LinearCrossEntropy.apply(*fused, labels, 25.0)
    loss.backward(torch.tensor(3.0))
    torch.testing.assert_close(loss, expected)
    for ours, theirs in zip(fused, full, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_frozen_weight_gets_no_gradient_and_forward_only_computes_none(small_chunks):
    hidden = torch.randn(ROWS, HIDDEN, requires_grad=True)
    weight = torch.randn(VOCAB, HIDDEN)
    LinearCrossEntropy.apply(hidden, weight, None, torch.randint(0, VOCAB, (ROWS,)), 1.0).backward()
    assert hidden.grad is not None and weight.grad is None
    with torch.no_grad():
        loss = LinearCrossEntropy.apply(hidden, weight, None, torch.randint(0, VOCAB, (ROWS,)), 1.0)
    assert loss.grad_fn is None and torch.isfinite(loss)


def test_no_tensor_as_large_as_the_logits_is_built(small_chunks):
    hidden = torch.randn(2, ROWS // 2, HIDDEN, requires_grad=True)
    head = nn.Linear(HIDDEN, VOCAB, bias=False).requires_grad_(False)
    labels = torch.randint(0, VOCAB, (2, ROWS // 2))
    with LargestTensor() as watch:
        causal_lm_loss(hidden, head, labels).backward()
    assert watch.largest == VOCAB * HIDDEN < ROWS * VOCAB  # the weight itself; a chunk's logits are 7 x VOCAB


def test_an_int4_head_gives_the_loss_of_its_dequantized_weight(small_chunks):
    torch.manual_seed(3)
    head = QuantLinear.from_weight(quantize_rtn(torch.randn(96, 32), 4, 16, sym=False), "awq", None)
    hidden = torch.randn(2, 10, 32, requires_grad=True)
    labels = torch.randint(0, 96, (2, 10))
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    expected = F.cross_entropy(F.linear(hidden, head.dequantize()).reshape(-1, 96), shifted.reshape(-1),
                               ignore_index=IGNORE_INDEX)
    loss = causal_lm_loss(hidden, head, labels)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss, hidden)[0], torch.autograd.grad(expected, hidden)[0])


class LoRAHead(nn.Module):
    """A head that is not a plain Linear (as peft's LoRA on lm_head): takes the checkpointed path."""

    def __init__(self):
        super().__init__()
        self.base = nn.Linear(HIDDEN, VOCAB)
        self.down, self.up = nn.Linear(HIDDEN, 2, bias=False), nn.Linear(2, VOCAB, bias=False)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


def test_any_head_module_gives_the_full_loss_and_gradients(small_chunks):
    torch.manual_seed(1)
    head = LoRAHead()
    hidden = torch.randn(2, ROWS // 2, HIDDEN)
    labels = torch.randint(0, VOCAB, (2, ROWS // 2))
    labels[1, 5:9] = IGNORE_INDEX
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    full_hidden = hidden.clone().requires_grad_(True)
    expected = F.cross_entropy(head(full_hidden).reshape(-1, VOCAB), shifted.reshape(-1), ignore_index=IGNORE_INDEX)
    expected_grads = torch.autograd.grad(expected, [full_hidden, *head.parameters()])
    ours_hidden = hidden.clone().requires_grad_(True)
    with LargestTensor() as watch:
        loss = causal_lm_loss(ours_hidden, head, labels)
        grads = torch.autograd.grad(loss, [ours_hidden, *head.parameters()])
    torch.testing.assert_close(loss, expected)
    for ours, theirs in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(ours, theirs)
    assert watch.largest < ROWS * VOCAB


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["q_proj", "lm_head"]], ids=["frozen-head", "lora-head"])
def test_tiny_llama_loss_and_lora_gradients_equal_the_models_own(tiny_llama, targets):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(2)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False))
    ids = torch.randint(0, base.config.vocab_size, (3, 24))
    labels = ids.clone()
    labels[2, 10:] = IGNORE_INDEX
    expected = model(input_ids=ids, labels=labels).loss
    trained = [p for p in model.parameters() if p.requires_grad]
    expected_grads = torch.autograd.grad(expected, trained)
    decoder, head = decoder_and_head(model.get_base_model())
    loss = causal_lm_loss(decoder(input_ids=ids).last_hidden_state, head, labels, num_items_in_batch=None)
    torch.testing.assert_close(loss, expected)
    for ours, theirs in zip(torch.autograd.grad(loss, trained), expected_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    counted = int((labels[..., 1:] != IGNORE_INDEX).sum())
    summed = causal_lm_loss(decoder(input_ids=ids).last_hidden_state, head, labels, num_items_in_batch=2 * counted)
    torch.testing.assert_close(summed, expected / 2)


def test_an_unknown_architecture_keeps_the_models_own_loss():
    class Config:
        model_type = "gemma2"  # soft-caps its logits

    class Model:
        config = Config()

    assert decoder_and_head(Model()) is None
