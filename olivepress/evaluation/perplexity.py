"""Perplexity: exp of the mean next-token loss over the data's token rows, one full-sequence forward per row."""

import math
from typing import ClassVar

from pydantic import Field

from olivepress.config.base import ConfigModel
from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import MeasureContext
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel, ModelHandle, OnnxModel, PyTorchModel, single_model
from olivepress.progress import progress


class PerplexityUserConfig(ConfigModel):
    """Perplexity takes no options: the data config's pre-processing makes the token rows (its eval split, if set)."""


class PerplexityMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(("perplexity",), "perplexity", False, True)
    description: ClassVar[str] = "exp of the mean next-token loss, one full-sequence forward per row."
    user_config: PerplexityUserConfig = Field(default_factory=PerplexityUserConfig)


def measure(metric: PerplexityMetricConfig, model: ModelHandle, data_config: DataConfig,
            context: MeasureContext) -> dict[str, float]:
    """Token rows as the data config's pre-processing makes them (its eval split, if it sets one)."""
    accelerator = context.accelerator
    from olivepress.data.container import HuggingfaceContainer
    from olivepress.models.loading import load_tokenizer

    model = single_model(model, "perplexity")
    if isinstance(model, PyTorchModel):
        raise OlivepressError("perplexity needs the model's tokenizer, which a PyTorchModel does not have; export it "
                              "or evaluate the Hugging Face model it comes from")
    tokenizer = load_tokenizer(model.path)
    train, held_out = HuggingfaceContainer(data_config).datasets(tokenizer)
    rows = held_out if held_out is not None else train
    if isinstance(model, HfModel):
        total, count = _torch_nll(model, rows, data_config.dataloader_config.params.batch_size, tokenizer, accelerator)
    else:
        total, count = _onnx_nll(model, rows, accelerator)
    if count == 0:
        raise OlivepressError(f"data_configs.{data_config.name}: no token to predict (rows of one token?)")
    return {"perplexity": math.exp(total / count)}


def _torch_nll(model: HfModel, rows, batch_size: int, tokenizer, accelerator: Accelerator) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    from olivepress.data.container import pad_id
    from olivepress.data.tokens import IGNORE_INDEX, PadCollator
    from olivepress.evaluation.torch_model import load_for_eval, torch_device

    device = torch_device(accelerator)
    network = load_for_eval(model, device)
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, collate_fn=PadCollator(pad_id(tokenizer)))
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in progress(loader, desc="perplexity", unit="batch"):
            mask = batch.get("attention_mask")
            logits = network(input_ids=batch["input_ids"].to(device),
                             attention_mask=None if mask is None else mask.to(device)).logits.float()
            labels = batch["labels"][:, 1:].to(device)
            total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((labels != IGNORE_INDEX).sum())
    return total, count


def _onnx_nll(model: OnnxModel, rows, accelerator: Accelerator) -> tuple[float, int]:
    """One row at a time, so that no padding goes through the graph."""
    import numpy as np

    from olivepress.data.tokens import IGNORE_INDEX
    from olivepress.evaluation.onnx_forward import OnnxDecoder

    decoder = OnnxDecoder(model, accelerator.execution_provider)
    total, count = 0.0, 0
    for row in progress(rows, desc="perplexity", unit="row"):
        logits = decoder.logits(list(row["input_ids"]))[:-1]
        labels = np.array(row["labels"][1:])
        keep = labels != IGNORE_INDEX  # padding carries IGNORE_INDEX labels
        top = logits.max(axis=-1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
        picked = logits[np.arange(len(labels)), np.where(keep, labels, 0)]
        total += float(((log_norm - picked) * keep).sum())
        count += int(keep.sum())
    return total, count
