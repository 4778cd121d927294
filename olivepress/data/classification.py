"""Labelled batches for classification, as Olive's huggingface_pre_process makes them: the input columns
tokenized together (a pair for two), truncated to max_length, padded, with each row's label."""

from typing import Any

import numpy as np

from olivepress.config.data_params import PreProcessParams
from olivepress.errors import OlivepressError

Batch = tuple[dict[str, np.ndarray], np.ndarray]  # model inputs by name, labels


def classification_batches(rows, params: PreProcessParams, tokenizer: Any, batch_size: int,
                           label2id: dict[str, int] | None) -> list[Batch]:
    """The rows tokenized and cut into batches of `batch_size`; `label2id` is the model's, for align_labels."""
    columns = [params.text_cols] if isinstance(params.text_cols, str) else params.text_cols or ["text"]
    label_col = _label_col(params.label_col)
    missing = [name for name in [*columns, label_col] if name not in rows.column_names]
    if missing:
        raise OlivepressError(f"pre_process_data_config.params: the data has no field '{missing[0]}'; "
                              f"its fields are {', '.join(rows.column_names)}")
    rows = _filtered(rows, label_col, params.labels_to_filter)
    if params.align_labels:
        rows = _aligned(rows, label_col, label2id)
    if not len(rows):
        raise OlivepressError("pre_process_data_config: no rows are left to classify")
    encoded = tokenizer(*[list(rows[name]) for name in columns], padding=params.padding, truncation=True,
                        max_length=params.max_seq_len if "max_seq_len" in params.model_fields_set else None,
                        add_special_tokens=params.add_special_tokens)
    labels = np.asarray(rows[label_col])
    batches = []
    for start in range(0, len(labels), batch_size):
        inputs = {name: _stacked(values[start:start + batch_size], start) for name, values in encoded.items()}
        batches.append((inputs, labels[start:start + batch_size]))
    return batches


def _label_col(label_col: str | list[str]) -> str:
    if isinstance(label_col, str):
        return label_col
    if len(label_col) != 1:
        raise OlivepressError(f"pre_process_data_config.params.label_cols: classification reads one label column, "
                              f"got {len(label_col)}")
    return label_col[0]


def _filtered(rows, label_col: str, labels_to_filter: list[str | int]):
    if not labels_to_filter:
        return rows
    names = getattr(rows.features[label_col], "names", None)
    left_out = {names.index(label) if names and label in names else label for label in labels_to_filter}
    return rows.filter(lambda label: label not in left_out, input_columns=[label_col])


def _aligned(rows, label_col: str, label2id: dict[str, int] | None):
    if not label2id:
        raise OlivepressError("pre_process_data_config.params.align_labels: the model's config.json has no label2id")
    if not hasattr(rows.features[label_col], "names"):
        raise OlivepressError(f"pre_process_data_config.params.align_labels: column '{label_col}' holds no label "
                              "names (a ClassLabel column) to match with the model's label2id")
    return rows.align_labels_with_mapping(label2id, label_col)


def _stacked(values: list, start: int) -> np.ndarray:
    if len({len(value) for value in values}) > 1:
        raise OlivepressError(f"pre_process_data_config.params.padding: the batch from row {start} holds rows of "
                              "different lengths; set padding (true or 'max_length') or dataloader batch_size 1")
    return np.asarray(values, dtype=np.int64)
