"""What the decoder layers keep for the backward pass while a fine-tuning pass trains.

Checkpointing a layer (keeping only its input and recomputing the rest in the backward pass) costs about a third
more compute per step; keeping its activations costs memory. By default the pass keeps the activations of as many
layers as fit in ACTIVATION_BUDGET_BYTES, stored in bfloat16 (half the float32 size; the backward pass computes in
float32 from them), and checkpoints the rest: on SmolLM2, 24 of the 30 layers at 8 x 128 tokens a step, 3 at
8 x 1024 (docs/finetuning.md has the measured speed and memory).

Setting `activation_checkpointing` (or `activation_checkpointing_kwargs`) in training_args turns this off: the
Trainer's own checkpointing then applies as given, with float32 activations.
"""

import math
from dataclasses import dataclass
from typing import Any

import torch

ACTIVATION_BUDGET_BYTES = 384 * 2**20
USER_KEYS = frozenset({"activation_checkpointing", "activation_checkpointing_kwargs", "gradient_checkpointing",
                       "gradient_checkpointing_kwargs"})
# Smaller saved tensors (softmax log-sum-exps, LoRA weights) stay as they are: they are cheap, and some need float32.
MIN_COMPACT_ELEMENTS = 2**16


def layer_activation_bytes(config: Any, step_tokens: int) -> int:
    """Bytes one decoder layer keeps for the backward pass in bfloat16 when it is not checkpointed, from the model's
    shape: its two norms' inputs and the attention input, queries/keys/values and attention output, and the MLP's
    gate, activation and up projection (SmolLM2 at 8 x 128 tokens: 16 MB, within 5% of the tensors counted with
    saved-tensor hooks)."""
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    queries = text.num_attention_heads * head_dim
    keys = (getattr(text, "num_key_value_heads", None) or text.num_attention_heads) * head_dim
    per_token = 3 * text.hidden_size + 2 * queries + 2 * keys + 3 * text.intermediate_size
    return step_tokens * per_token * torch.finfo(torch.bfloat16).bits // 8


def kept_layer_count(config: Any, layers: int, step_tokens: int, budget: int | None = None) -> int:
    """How many of the layers keep their activations within the budget (default ACTIVATION_BUDGET_BYTES)."""
    budget = ACTIVATION_BUDGET_BYTES if budget is None else budget
    return min(layers, budget // max(1, layer_activation_bytes(config, step_tokens)))


@dataclass(frozen=True)
class _Compact:
    tensor: torch.Tensor


class _CompactSavedTensors(torch.autograd.graph.saved_tensors_hooks):
    """Saved float32 activations stored in bfloat16 while the context is open, each tensor once however many ops
    save it (an RMSNorm saves its input twice, each LoRA projection their shared input). `close` forgets the
    tensors it has seen: the graph may keep the hooks, and with them this object, until the backward pass."""

    def __init__(self):
        self.seen: dict[int, tuple[torch.Tensor, _Compact]] = {}  # the tensor too, so that its id stays its own
        super().__init__(self._pack, _unpack)

    def _pack(self, saved: torch.Tensor) -> Any:
        # parameters (leaves) are saved as they are: a copy would add memory, not save it
        if saved.dtype != torch.float32 or not saved.requires_grad or saved.is_leaf \
                or saved.numel() < MIN_COMPACT_ELEMENTS:
            return saved
        if id(saved) not in self.seen:
            self.seen[id(saved)] = saved, _Compact(saved.to(torch.bfloat16))
        return self.seen[id(saved)][1]

    def close(self) -> None:
        self.__exit__(None, None, None)
        self.seen.clear()


def _unpack(packed: Any) -> torch.Tensor:
    return packed.tensor.float() if isinstance(packed, _Compact) else packed


def keep_activations_callback(step_tokens: int, log: Any):
    """A TrainerCallback that applies keep_activations once the Trainer has turned checkpointing on."""
    from transformers import TrainerCallback

    class KeepActivations(TrainerCallback):
        def __init__(self):
            self.handles: list[Any] = []

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if args.activation_checkpointing and model is not None:
                self.handles = keep_activations(model, step_tokens, log)

        def on_train_end(self, args, state, control, **kwargs):
            for handle in self.handles:
                handle.remove()

    return KeepActivations()


def keep_activations(model: Any, step_tokens: int, log: Any) -> list[Any]:
    """Checkpoint only the layers past the budget; the others keep bfloat16 activations. Call after the Trainer
    turned checkpointing on. Returns the hook handles (removing them restores float32 activations)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
    if not layers:
        return []
    kept = kept_layer_count(model.config, len(layers), step_tokens)
    handles = []
    for layer in layers[len(layers) - kept:]:  # the last layers: their backward runs first and frees them first
        layer.gradient_checkpointing = False
        handles += _compact_saved_tensors(layer)
    per_layer = layer_activation_bytes(model.config, step_tokens)
    log.info("%d of %d layers keep their activations in bfloat16 (about %d MB); %d are checkpointed", kept,
             len(layers), math.ceil(kept * per_layer / 2**20), len(layers) - kept)
    return handles


def _compact_saved_tensors(layer: torch.nn.Module) -> list[Any]:
    """Hooks that store what the layer's forward saves for backward in bfloat16."""
    contexts: list[_CompactSavedTensors] = []

    def enter(module, args):
        contexts.append(_CompactSavedTensors())
        contexts[-1].__enter__()

    def leave(module, args, output):
        contexts.pop().close()

    return [layer.register_forward_pre_hook(enter), layer.register_forward_hook(leave, always_call=True)]
