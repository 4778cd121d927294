"""Typed parameters of a data config's components (`load_dataset_config.params` and the others).

Imported when a document is loaded, so it depends on pydantic and olivepress.config only.
"""

from typing import Literal

from pydantic import Field, field_validator

from olivepress.config.base import ConfigModel


class LoadDatasetParams(ConfigModel):
    data_name: str = Field(
        description="A `datasets` file format ('json' for JSON and JSON Lines, 'csv', 'parquet', 'text', 'arrow') "
        "read from data_files or data_dir, or the id of a hub dataset (downloaded unless cached)."
    )
    data_files: str | list[str] | None = Field(
        None, description="Local data file(s), relative to the current directory; glob patterns are allowed."
    )
    data_dir: str | None = Field(
        None, description="A folder of data files (for a file format) or a sub-folder of a hub dataset."
    )
    subset: str | None = Field(None, description="The configuration (subset) of a hub dataset.")
    split: str = Field("train", description="The split to read, with `datasets` slicing such as 'train[:200]'.")


class PreProcessParams(ConfigModel):
    text_template: str | None = Field(
        None, description="Text of each row with {field} replaced by the row's field, e.g. '### Q: {prompt}\\n### A: {response}'."
    )
    text_cols: str | list[str] | None = Field(
        None, description="Columns joined by a newline into the text when there is no text_template; "
        "empty values are skipped. Default: the 'text' column."
    )
    messages_col: str | None = Field(
        None, description="A column of chat messages ([{'role', 'content'}]) rendered with the tokenizer's chat template."
    )
    use_chat_template: bool = Field(
        False, description="Render rows with the tokenizer's chat template, from messages_col (default column 'messages')."
    )
    corpus_strategy: Literal["join", "line-by-line"] = Field(
        "join", description="'join' packs all texts, each ended by EOS, into rows of exactly max_seq_len tokens "
        "(no padding); 'line-by-line' keeps one text per row, truncated to max_seq_len."
    )
    max_seq_len: int = Field(1024, gt=0, description="Tokens per row.")
    pad_to_max_len: bool = Field(
        False, description="line-by-line: pad every row to max_seq_len; otherwise batches are padded to their longest row."
    )
    use_attention_mask: bool = Field(True, description="Give the model an attention_mask column.")
    add_special_tokens: bool = Field(True, description="Let the tokenizer add its special tokens (such as BOS) to each text.")
    append_eos: bool = Field(True, description="End each text with the tokenizer's EOS token (unless it already ends with it).")
    max_samples: int | None = Field(None, gt=0, description="Use at most this many rows of the data (the first ones).")
    eval_dataset_size: int | float | None = Field(
        None, description="Hold out rows for evaluation: a count (int >= 1) or a fraction (0 < float < 1)."
    )
    random_seed: int = Field(42, description="Seed of the train/eval split.")

    @field_validator("eval_dataset_size")
    @classmethod
    def _check_eval_size(cls, value: int | float | None) -> int | float | None:
        return check_eval_size(value)


class DataloaderParams(ConfigModel):
    batch_size: int = Field(1, gt=0, description="Rows per batch.")
    shuffle: bool = Field(False, description="Shuffle the rows each epoch.")
    drop_last: bool = Field(False, description="Drop the last batch when it is smaller than batch_size.")
    num_workers: int = Field(0, ge=0, description="Worker processes loading batches (0: in the main process).")




def check_eval_size(value: int | float | None) -> int | float | None:
    """An eval split size is a row count >= 1 or a fraction strictly between 0 and 1."""
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, int) and value < 1):
        raise ValueError("must be a row count >= 1 or a fraction between 0 and 1")
    if isinstance(value, float) and not 0 < value < 1:
        raise ValueError("a fraction must be between 0 and 1 (exclusive)")
    return value
