"""Fine-tuning keeps bfloat16 activations for as many decoder layers as fit in the budget and checkpoints the rest;
the gradients stay those of float32 training within bfloat16's rounding."""

import logging

import pytest
import torch
from test_lora import lora_config, make_context, packed_rows, repeated_sentence_data
from transformers import LlamaConfig, TrainerCallback

from olivepress.models.handles import HfModel
from olivepress.passes.pytorch import activations
from olivepress.passes.pytorch.activations import keep_activations, kept_layer_count, layer_activation_bytes
from olivepress.passes.pytorch.lora import LoRA

SMOLLM2 = LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                      num_hidden_layers=30)


def test_the_layers_kept_fill_the_budget():
    # per token: 3 x 576 + 2 x 576 (queries, attention output) + 2 x 192 (keys, values) + 3 x 1536 = 7,872 values
    assert layer_activation_bytes(SMOLLM2, 1024) == 7872 * 1024 * 2
    assert kept_layer_count(SMOLLM2, 30, 8 * 128) == 24  # 384 MB / 15.4 MB
    assert kept_layer_count(SMOLLM2, 30, 8 * 1024) == 3
    assert kept_layer_count(SMOLLM2, 30, 64) == 30
    assert kept_layer_count(SMOLLM2, 30, 8 * 128, budget=0) == 0


def lora_gradients(model_dir, compact: bool) -> tuple[dict[str, torch.Tensor], int]:
    """LoRA weight gradients of one backward pass on the tiny model, and how many saved tensors became bfloat16."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.train()
    compacted = []
    pack = activations._CompactSavedTensors._pack

    def counting_pack(self, saved):
        packed = pack(self, saved)
        compacted.append(isinstance(packed, activations._Compact))
        return packed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(activations, "MIN_COMPACT_ELEMENTS", 1)  # the tiny model's activations are all small
        patch.setattr(activations._CompactSavedTensors, "_pack", counting_pack)
        handles = keep_activations(model, step_tokens=64, log=logging.getLogger("test")) if compact else []
        rows = packed_rows(model_dir)
        model(input_ids=rows, labels=rows).loss.backward()
    for handle in handles:
        handle.remove()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return grads, sum(compacted)


def test_compact_activations_give_float32_gradients_within_bfloat16_rounding(tiny_llama):
    exact, none_compacted = lora_gradients(tiny_llama, compact=False)
    compact, compacted = lora_gradients(tiny_llama, compact=True)
    assert none_compacted == 0 and compacted > 10
    assert exact.keys() == compact.keys() and len(exact) == 8  # A and B of q_proj and v_proj in 2 layers
    for name, grad in exact.items():
        error = (compact[name] - grad).norm() / grad.norm()
        assert 0 < error < 2e-2, (name, error)


class LayerFlags(TrainerCallback):
    """Which decoder layers are checkpointed at the first step."""

    def __init__(self):
        self.checkpointed: list[bool] = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if not self.checkpointed:
            self.checkpointed = [layer.gradient_checkpointing for layer in model.base_model.model.model.layers]


@pytest.mark.slow
@pytest.mark.parametrize(("training_args", "checkpointed"), [
    ({}, [True, False]),  # the budget holds one layer: the last keeps its activations
    ({"activation_checkpointing": True}, [True, True]),
    ({"activation_checkpointing": False}, [False, False]),
])
def test_training_keeps_what_fits_unless_the_user_sets_checkpointing(tiny_llama, tmp_path, monkeypatch,
                                                                     training_args, checkpointed):
    step_tokens = 2 * 32
    monkeypatch.setattr(activations, "ACTIVATION_BUDGET_BYTES",
                        int(1.5 * layer_activation_bytes(LlamaConfig.from_pretrained(tiny_llama), step_tokens)))
    context = make_context(tmp_path, repeated_sentence_data(tmp_path))
    config = lora_config(r=4, training_args={"max_steps": 2, "per_device_train_batch_size": 2, **training_args})
    flags = LayerFlags()
    LoRA().train(HfModel(path=tiny_llama), config, context, callbacks=(flags,))
    assert flags.checkpointed == checkpointed
    assert context.metrics["train_steps"] == 2
