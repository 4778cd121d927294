"""Token rows for causal-LM training: packing (join), one text per row (line-by-line), and batch padding."""

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from olivepress.progress import progress

IGNORE_INDEX = -100  # label of positions that carry no loss
TOKENIZE_CHUNK = 512


def tokenize(tokenizer: Any, texts: Iterable[str], add_special_tokens: bool = True, append_eos: bool = True,
             total: int | None = None) -> Iterator[list[int]]:
    """Token ids of each text, in chunks so that a caller may stop early."""
    eos = tokenizer.eos_token_id
    chunk: list[str] = []
    with progress(total=total, desc="tokenizing", unit="text") as bar:
        for text in texts:
            chunk.append(text)
            if len(chunk) == TOKENIZE_CHUNK:
                yield from _tokenize_chunk(tokenizer, chunk, add_special_tokens, eos if append_eos else None)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            yield from _tokenize_chunk(tokenizer, chunk, add_special_tokens, eos if append_eos else None)
            bar.update(len(chunk))


def _tokenize_chunk(tokenizer: Any, texts: list[str], add_special_tokens: bool, eos: int | None) -> list[list[int]]:
    ids = tokenizer(texts, add_special_tokens=add_special_tokens, return_attention_mask=False)["input_ids"]
    if eos is not None:
        ids = [row if row and row[-1] == eos else [*row, eos] for row in ids]
    return ids


def pack(token_lists: Iterable[list[int]], seq_len: int, max_rows: int | None = None) -> list[list[int]]:
    """All tokens in order, cut into rows of exactly seq_len; the last, shorter remainder is dropped."""
    rows: list[list[int]] = []
    buffer: list[int] = []
    for ids in token_lists:
        buffer.extend(ids)
        while len(buffer) >= seq_len:
            rows.append(buffer[:seq_len])
            buffer = buffer[seq_len:]
            if max_rows is not None and len(rows) == max_rows:
                return rows
    return rows


def packed_columns(rows: list[list[int]], use_attention_mask: bool) -> dict[str, list[list[int]]]:
    columns = {"input_ids": rows, "labels": [list(row) for row in rows]}
    if use_attention_mask:
        columns["attention_mask"] = [[1] * len(row) for row in rows]
    return columns


def line_columns(token_lists: Iterable[list[int]], seq_len: int, pad_to: int | None, pad_id: int,
                 use_attention_mask: bool) -> dict[str, list[list[int]]]:
    """One row per text, truncated to seq_len; padded to `pad_to` when given (labels IGNORE_INDEX, mask 0)."""
    columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
    for ids in token_lists:
        ids = ids[:seq_len]
        padding = (pad_to - len(ids)) if pad_to else 0
        columns["input_ids"].append(ids + [pad_id] * padding)
        columns["labels"].append(ids + [IGNORE_INDEX] * padding)
        columns["attention_mask"].append([1] * len(ids) + [0] * padding)
    if not use_attention_mask:
        del columns["attention_mask"]
    return columns


class PadCollator:
    """Stacks rows into tensors, padding each batch to its longest row (labels IGNORE_INDEX, attention mask 0)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        fill = {"input_ids": self.pad_id, "labels": IGNORE_INDEX, "attention_mask": 0}
        batch = {}
        for name in features[0]:
            batch[name] = torch.tensor(
                [list(f[name]) + [fill[name]] * (width - len(f[name])) for f in features], dtype=torch.long
            )
        return batch
