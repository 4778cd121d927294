"""Calibration one decoder layer at a time.

The inputs of the first decoder layer are captured once (a pre-hook records the hidden states and the
keyword arguments the model passes: attention mask, position embeddings). Then each layer in turn is
moved to the compute device in float32, its linears' input statistics are gathered with hooks, it is
quantized in place, and its outputs become the next layer's inputs.
Peak memory stays near the layers outside the decoder layers (embeddings, LM head), the quantized layers, one
float layer and the calibration activations when the decoder layers' weights are read one layer at a time
(olivepress.models.loading.load_causal_lm_by_layer); near one float copy of the model when it was loaded whole.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from olivepress.progress import progress

TOKENS_PER_BATCH = 4096


@dataclass
class InputStats:
    """What the quantizers need to know about a linear's inputs x (one row per token)."""

    gram: torch.Tensor  # [in, in] float32: sum of x^T x
    abs_sum: torch.Tensor  # [in] float32: sum of |x|
    tokens: int = 0

    @classmethod
    def empty(cls, in_features: int, device: torch.device) -> "InputStats":
        return cls(gram=torch.zeros(in_features, in_features, device=device),
                   abs_sum=torch.zeros(in_features, device=device))

    def add(self, x: torch.Tensor) -> None:
        rows = x.reshape(-1, x.shape[-1]).float()
        self.gram.addmm_(rows.t(), rows)
        self.abs_sum += rows.abs().sum(0)
        self.tokens += rows.shape[0]

    @property
    def hessian(self) -> torch.Tensor:
        """E[x^T x]: the output error of a weight change D is trace(D H D^T) per token."""
        return self.gram / self.tokens

    @property
    def abs_mean(self) -> torch.Tensor:
        return self.abs_sum / self.tokens


@dataclass
class LayerBatch:
    hidden: torch.Tensor
    kwargs: dict[str, Any]


class _Captured(Exception):
    pass


def batch_size_for(seq_len: int) -> int:
    return max(1, TOKENS_PER_BATCH // seq_len)


def capture_first_layer_inputs(model: nn.Module, first_layer: nn.Module, rows: torch.Tensor,
                               device: torch.device) -> list[LayerBatch]:
    """Run the model up to its first decoder layer on `rows` [n, seq_len], batch by batch."""
    batches: list[LayerBatch] = []

    def record(module, args, kwargs):
        kwargs = dict(kwargs)
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs.update(past_key_values=None, use_cache=False)
        kwargs.pop("past_key_value", None)
        batches.append(LayerBatch(hidden=_to_device(hidden, device), kwargs=_to_device(kwargs, device)))
        raise _Captured

    model_device = next(model.parameters()).device
    handle = first_layer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            for input_ids in rows.split(batch_size_for(rows.shape[1])):
                try:
                    model(input_ids=input_ids.to(model_device), use_cache=False)
                except _Captured:
                    pass
    finally:
        handle.remove()
    return batches


def collect_input_stats(layer: nn.Module, linear_names: list[str], batches: list[LayerBatch],
                        keep_outputs: bool) -> tuple[dict[str, InputStats], list[torch.Tensor] | None]:
    """Input statistics of each named linear over all batches (and the layer's outputs, when kept). Linears fed
    the same tensor (q/k/v, gate/up) share one InputStats object, so each distinct input is accumulated once."""
    stats: dict[str, InputStats] = {}
    owner_of: dict[str, str] = {}
    # (data pointer, shape, strides) -> (first linear fed this tensor, the tensor). Holding the tensor until the
    # batch is done keeps its memory from being reused by a later, different input with the same key.
    seen: dict[tuple, tuple[str, torch.Tensor]] = {}

    def hook_for(name: str):
        def hook(module, args):
            x = args[0]
            owner, _ = seen.setdefault((x.data_ptr(), tuple(x.shape), x.stride()), (name, x))
            owner_of[name] = owner
            if owner == name:
                stats.setdefault(name, InputStats.empty(x.shape[-1], x.device)).add(x)
        return hook

    outputs: list[torch.Tensor] | None = [] if keep_outputs else None
    handles = [layer.get_submodule(name).register_forward_pre_hook(hook_for(name)) for name in linear_names]
    try:
        for batch in batches:
            seen.clear()
            output = run_layer(layer, batch)
            if outputs is not None:
                outputs.append(output)
    finally:
        for handle in handles:
            handle.remove()
    return {name: stats[owner_of[name]] for name in linear_names}, outputs


def run_layer(layer: nn.Module, batch: LayerBatch) -> torch.Tensor:
    with torch.no_grad():
        output = layer(batch.hidden, **batch.kwargs)
    return output[0] if isinstance(output, tuple) else output


def quantize_layer_by_layer(
    model: nn.Module, layers: nn.ModuleList, layer_linears: list[list[str]], rows: torch.Tensor, device: torch.device,
    quantize_layer: Callable[[int, nn.Module, list[str], dict[str, InputStats]], None], propagate_float: bool,
    description: str, load_layer: Callable[[int], None],
) -> list[LayerBatch]:
    """For each decoder layer (its weights read by `load_layer(index)`, then moved to `device` in float32): gather
    its linears' input statistics, call
    `quantize_layer(index, layer, names, stats)` to quantize it in place, and pass its outputs to the next layer:
    those of the quantized layer, or with `propagate_float` those of the float layer, computed in the same pass
    as the statistics (as llm-awq does), which saves a forward pass per layer. Returns the last layer's outputs."""
    batches = capture_first_layer_inputs(model, layers[0], rows, device)
    for index in progress(range(len(layers)), desc=description, unit="layer"):
        load_layer(index)
        layer = layers[index]
        dtype = next(layer.parameters()).dtype
        layer.to(device=device, dtype=torch.float32)
        stats, outputs = collect_input_stats(layer, layer_linears[index], batches, keep_outputs=propagate_float)
        quantize_layer(index, layer, layer_linears[index], stats)
        del stats
        if outputs is None:
            outputs = [run_layer(layer, batch) for batch in batches]
        batches = [LayerBatch(hidden=output, kwargs=batch.kwargs) for output, batch in zip(outputs, batches, strict=True)]
        layer.to(device="cpu", dtype=dtype)
    return batches


def output_stats(module: nn.Module, batches: list[LayerBatch], device: torch.device) -> InputStats:
    """The statistics of `module`'s outputs (float32, on `device`) over the batches' hidden states."""
    dtype = next(module.parameters()).dtype
    module.to(device=device, dtype=torch.float32)
    stats: InputStats | None = None
    with torch.no_grad():
        for batch in batches:
            output = module(batch.hidden)
            stats = stats or InputStats.empty(output.shape[-1], device)
            stats.add(output)
    module.to(device="cpu", dtype=dtype)
    assert stats is not None  # there is at least one batch of calibration rows
    return stats


def each_layer(layers: nn.ModuleList, description: str, load_layer: Callable[[int], None]
               ) -> Iterator[tuple[int, nn.Module]]:
    """The layers with a progress bar, each loaded by `load_layer(index)`, for quantizers that need no calibration."""
    for index in progress(range(len(layers)), desc=description, unit="layer"):
        load_layer(index)
        yield index, layers[index]


def _to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) on `device`, floating ones in float32."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float32 if value.is_floating_point() else value.dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    return value
