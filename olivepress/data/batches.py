"""Batches of model inputs as the user's dataloader functions make them (Olive's shapes), as numpy rows, and as the
feeds of an ONNX graph."""

import itertools
from typing import Any

import numpy as np

from olivepress.errors import OlivepressError

Row = dict[str, np.ndarray]


def as_row(batch: Any) -> Row:
    """A batch as Olive's dataloaders give it: inputs, or (inputs, labels); inputs a dict, a tuple or a tensor."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and not _is_array(batch[0]):
        batch = batch[0]
    if isinstance(batch, dict):
        return {str(name): _numpy(value) for name, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return {str(index): _numpy(value) for index, value in enumerate(batch)}
    return {"0": _numpy(batch)}


def batches_of(loaded: Any, limit: int | None = None) -> list[Any]:
    """The batches a dataloader function returned (the first `limit` of them): an iterable's items, or what an
    onnxruntime CalibrationDataReader (Olive 0.2-0.6's calibration readers) gives until it gives None."""
    items = iter(loaded.get_next, None) if hasattr(loaded, "get_next") else iter(loaded)
    return list(itertools.islice(items, limit))


def graph_feed(row: Row, inputs: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """A row as the feed of a graph whose inputs (name: numpy type) are `inputs`: each input by its name, else by
    its position among the row's values."""
    values = list(row.values())
    feed = {}
    for index, (name, dtype) in enumerate(inputs.items()):
        if name in row:
            feed[name] = row[name].astype(dtype)
        elif str(index) in row:
            feed[name] = row[str(index)].astype(dtype)
        elif not any(key in inputs for key in row) and index < len(values):
            feed[name] = values[index].astype(dtype)
        else:
            raise OlivepressError(f"{where}: the graph takes an input '{name}', which the dataloader's batches do not "
                                  f"give (they give {', '.join(row)})")
    return feed


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape")


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
