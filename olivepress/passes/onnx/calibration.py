"""Feeds for an ONNX graph from a data config, keyed by the graph's input names: the batches of the data config's
dataloader function of user_script (Olive's dataloader_func) as they are, else olivepress's data container's
batches tokenized with the tokenizer in the model folder. Calibration and session tuning read them."""

from collections.abc import Iterator

import numpy as np

from olivepress.config.sections import DataConfig
from olivepress.data.container import HuggingfaceContainer
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.models.loading import load_tokenizer


def graph_feeds(model: OnnxModel, data: DataConfig, inputs: dict[str, np.dtype]) -> list[dict[str, np.ndarray]]:
    """One feed per batch of `data`: {input name: array of the input's element type}, for the graph `inputs`."""
    if data.user_function("dataloader_config") is not None:
        return HuggingfaceContainer(data).graph_feeds(inputs)
    try:
        tokenizer = load_tokenizer(model.path)
    except (OSError, ValueError):
        raise OlivepressError(f"data_config: {model.path} holds no tokenizer to turn the data '{data.name}' into "
                              "token ids (OnnxConversion copies it beside the graph)") from None
    return [_feed(batch, inputs, data.name) for batch in HuggingfaceContainer(data).dataloader(tokenizer)]


def _feed(batch: dict, inputs: dict[str, np.dtype], data_name: str) -> dict[str, np.ndarray]:
    ids = batch["input_ids"].numpy()
    derived = {
        "attention_mask": lambda: batch["attention_mask"].numpy() if "attention_mask" in batch else np.ones_like(ids),
        "token_type_ids": lambda: np.zeros_like(ids),
        "position_ids": lambda: np.broadcast_to(np.arange(ids.shape[1]), ids.shape).copy(),
    }
    feed = {}
    for name, dtype in inputs.items():
        if name in batch:
            feed[name] = batch[name].numpy().astype(dtype)
        elif name in derived:
            feed[name] = derived[name]().astype(dtype)
        else:
            raise OlivepressError(f"data_config: the graph takes an input '{name}', which the data '{data_name}' does "
                                  f"not give (it gives {', '.join(batch)})")
    return feed


def input_types(graph) -> dict[str, np.dtype]:
    """{input name: numpy element type} of the inputs a graph must be fed (those without an initializer default)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    defaults = {tensor.name for tensor in graph.initializer}
    return {value.name: tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            for value in graph.input if value.name not in defaults}


class FeedReader:
    """An onnxruntime CalibrationDataReader over prepared feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)
