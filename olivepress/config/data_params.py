"""Typed parameters of a data config's components (`load_dataset_config.params` and the others).

Imported when a document is loaded, so it depends on pydantic and olivepress.config only.
"""

from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from olivepress.config.base import ConfigModel


class LoadDatasetParams(ConfigModel):
    """The built-in loader's parameters. Further keys are keyword arguments of a loader function of the data
    config's user_script, or a dummy container's parameters; the data config checks them against its loader."""

    model_config = ConfigModel.model_config | ConfigDict(extra="allow")

    data_name: str | None = Field(
        None, description="A `datasets` file format ('json' for JSON and JSON Lines, 'csv', 'parquet', 'text', 'arrow') "
        "read from data_files or data_dir, or the id of a hub dataset (downloaded unless cached). Needed by the "
        "built-in loader."
    )
    data_files: str | list[str] | None = Field(
        None, description="Local data file(s), relative to the current directory; glob patterns are allowed."
    )
    data_dir: str | None = Field(
        None, description="A folder of data files (for a file format) or a sub-folder of a hub dataset."
    )
    subset: str | None = Field(None, description="The configuration (subset) of a hub dataset.")
    split: str = Field("train", description="The split to read, with `datasets` slicing such as 'train[:200]'.")
    trust_remote_code: bool | None = Field(
        None, description="Olive lets datasets run a hub dataset's loading script; olivepress reads a dataset's data "
        "files only, so the key is accepted and has no effect."
    )
    streaming: bool = Field(
        False, description="Read the split as a stream (datasets' streaming): only the rows used (pre-processing's "
        "max_samples) are fetched."
    )
    col_filters: dict[str, str | int | float] | None = Field(
        None, description="Olive's row filter: keep only the rows whose columns hold these values, e.g. "
        "{language: en}."
    )


class PreProcessParams(ConfigModel):
    """Further keys are keyword arguments of a user_script function named by the component's type."""

    model_config = ConfigModel.model_config | ConfigDict(extra="allow")

    text_template: str | None = Field(
        None, description="Text of each row with {field} replaced by the row's field, e.g. '### Q: {prompt}\\n### A: {response}'."
    )
    text_cols: str | list[str] | None = Field(
        None, validation_alias=AliasChoices("text_cols", "input_cols"),
        description="Columns joined by a newline into the text when there is no text_template; "
        "empty values are skipped. Default: the 'text' column. Olive's input_cols is read as text_cols."
    )
    messages_col: str | None = Field(
        None, description="A column of chat messages ([{'role', 'content'}]) rendered with the tokenizer's chat template."
    )
    use_chat_template: bool = Field(
        False, description="Render rows with the tokenizer's chat template, from messages_col (default column 'messages')."
    )
    corpus_strategy: Literal["join", "line-by-line"] = Field(
        "join", validation_alias=AliasChoices("corpus_strategy", "strategy"),
        description="'join' packs all texts, each ended by EOS, into rows of exactly max_seq_len tokens "
        "(no padding); 'line-by-line' keeps one text per row, truncated to max_seq_len."
    )
    max_seq_len: int = Field(1024, gt=0, validation_alias=AliasChoices("max_seq_len", "max_length"),
                             description="Tokens per row (Olive's max_length is read as max_seq_len).")
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
    label_col: str | list[str] = Field(
        "label", validation_alias=AliasChoices("label_col", "label_cols"),
        description="Classification (accuracy over model outputs): the column of each row's label; Olive 0.5's "
        "label_cols, a list of one, is read too."
    )
    padding: bool | Literal["longest", "max_length", "do_not_pad"] = Field(
        True, description="Classification: true or 'longest' pads the rows to the longest one, 'max_length' to "
        "max_length, false or 'do_not_pad' leaves them (then a batch must hold rows of one length)."
    )
    align_labels: bool = Field(
        False, description="Classification: renumber the labels by the model's label2id (config.json), matching "
        "the data's label names (a ClassLabel column) with the model's."
    )
    labels_to_filter: list[str | int] = Field(
        default_factory=list, description="Classification: leave out the rows whose label (its name, for a "
        "ClassLabel column, or its value) is one of these."
    )

    @field_validator("eval_dataset_size")
    @classmethod
    def _check_eval_size(cls, value: int | float | None) -> int | float | None:
        return check_eval_size(value)


class DummyDataParams(ConfigModel):
    """The parameters of Olive's transformers dummy containers: rows of token ids, attention mask and position
    ids (and empty-valued past key/values where the graph takes them), for latency and throughput."""

    seq_len: int = Field(8, gt=0, description="Tokens per row (input_ids, position_ids).")
    past_seq_len: int = Field(0, ge=0, description="Past tokens the rows pretend to follow: the attention mask covers "
                              "past_seq_len + seq_len, past key/values hold past_seq_len positions.")
    max_seq_len: int = Field(2048, gt=0, description="The longest sequence the rows may make (a check).")
    max_samples: int = Field(32, gt=0, description="Rows.")
    model_name: str | None = Field(None, description="Olive's model id for the dummy inputs; not read (the shapes "
                                   "come from the graph), accepted for Olive documents.")
    trust_remote_code: bool | None = Field(None, description="Accepted for Olive documents; not read.")
    use_fp16: bool = Field(False, description="Accepted for Olive documents; the graph's own input types decide.")
    generative: bool = Field(False, description="The rows are prompts: latency and throughput time generating "
                             "from them (user_config.run_kwargs' max_new_tokens) instead of one forward.")
    ort_past_key_name: str | None = Field(None, description="Olive's name pattern of the graph's past key inputs "
                                          "(e.g. past_key_<id>); accepted, the graph's own inputs are read.")
    ort_past_value_name: str | None = Field(None, description="The same for the past value inputs.")
    use_step: bool = Field(False, description="Olive 0.9's 'step' input of older decoder graphs; true is refused.")
    shared_kv: bool = Field(False, description="Olive 0.9's past key/value buffers shared across steps (max_seq_len "
                            "long); true is refused.")

    @field_validator("use_step", "shared_kv")
    @classmethod
    def _refuse_olive_graph_inputs(cls, value: bool, info) -> bool:
        if value:
            made = "a 'step' input" if info.field_name == "use_step" else "past key/values in one buffer of max_seq_len"
            raise ValueError(f"Olive 0.9's dummy rows with {made} are not made by olivepress (they fit graphs Olive's "
                             "own passes built); remove it, or give a dataloader function of user_script that yields "
                             "the graph's inputs")
        return value

    @field_validator("max_seq_len")
    @classmethod
    def _fits(cls, value: int, info) -> int:
        total = info.data.get("seq_len", 0) + info.data.get("past_seq_len", 0)
        if total > value:
            raise ValueError(f"seq_len + past_seq_len ({total}) exceeds max_seq_len {value}")
        return value


DUMMY_DEFAULTS = {  # Olive's defaults for each dummy container
    "TransformersPromptDummyDataContainer": {"seq_len": 8, "past_seq_len": 0},
    "TransformersTokenDummyDataContainer": {"seq_len": 1, "past_seq_len": 8},
    "TransformersDummyDataContainer": {"seq_len": 128, "past_seq_len": 128, "max_seq_len": 1024},
}


# Keys of Olive's pre-processing that olivepress accepts without reading (a warning says so when a document sets
# them): the task (the metric decides how rows are read), the tokenizer's source (the model's own), Olive's joining.
OLIVE_UNREAD_PRE_PROCESS = ("task", "model_name", "trust_remote_code", "joiner", "batched")


class DataloaderParams(ConfigModel):
    """Further keys are keyword arguments of a user_script function named by the component's type."""

    model_config = ConfigModel.model_config | ConfigDict(extra="allow")

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
