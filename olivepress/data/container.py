"""HuggingfaceContainer: a data config's rows -> texts -> token rows -> batches, for training and calibration."""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from olivepress.config.data_params import (
    OLIVE_UNREAD_PRE_PROCESS,
    DataloaderParams,
    LoadDatasetParams,
    PreProcessParams,
    check_eval_size,
)
from olivepress.config.sections import DataConfig
from olivepress.data.batches import as_row, batches_of, graph_feed
from olivepress.data.classification import Batch, classification_batches
from olivepress.data.files import (
    FILE_FORMATS,
    check_json_file,
    hub_dataset,
    local_data_files,
)
from olivepress.data.text import text_function
from olivepress.data.tokens import (
    PadCollator,
    line_columns,
    pack,
    packed_columns,
    tokenize,
)
from olivepress.errors import OlivepressError
from olivepress.log import logger
from olivepress.user_code import load_script

SEED_DIR = Path(__file__).parent / "seed"
SEED_FILES = ("data_sample_travel.jsonl", "dataset-classification.json")


class HuggingfaceContainer:
    """The data of one `data_configs` entry, with validated component parameters."""

    def __init__(self, config: DataConfig):
        self.config = config
        self.load_params: LoadDatasetParams = config.load_dataset_config.params
        self.pre_process_params: PreProcessParams = config.pre_process_data_config.params
        self.dataloader_params: DataloaderParams = config.dataloader_config.params
        unread = [key for key in self.pre_process_params.model_extra or {} if key in OLIVE_UNREAD_PRE_PROCESS]
        if unread and config.user_function("pre_process_data_config") is None:
            logger.warning("data_configs.%s.pre_process_data_config: %s accepted from the Olive document but not read "
                           "(the metric or pass reading the data decides its rows; the model's own tokenizer is used)",
                           config.name, ", ".join(unread))

    # ------------------------------------------------------------------ rows

    def load_dataset(self):
        """The raw rows (a datasets.Dataset), from local files (those with different columns concatenated) or from
        a hub dataset's snapshot, downloaded unless cached."""
        params = self.load_params
        if (function := self.user_function("load_dataset_config")) is not None:
            self.local_data_dir()
            return function(**params.model_dump(exclude_unset=True))
        if params.data_name is None:
            raise OlivepressError(f"data_configs.{self.config.name}: {self.config.type} makes no records to load")
        try:
            if params.data_name in FILE_FORMATS:
                return self._load_files(params)
            import datasets

            folder = hub_dataset(params.data_name).folder
            return self._streamed(datasets.load_dataset(
                str(folder), name=params.subset, data_files=params.data_files, data_dir=params.data_dir,
                split=params.split, streaming=params.streaming))
        except OlivepressError as error:
            raise OlivepressError(f"data_configs.{self.config.name}: {error}") from None

    def _streamed(self, rows):
        """A streamed split as a Dataset of the rows used: the first max_samples (all without it)."""
        if not self.load_params.streaming:
            return rows
        import datasets

        limit = self.pre_process_params.max_samples
        return datasets.Dataset.from_list(list(rows.take(limit) if limit is not None else rows))

    def records(self):
        """The rows after loading, col_filters and pre-processing (a user function's, else the first max_samples)."""
        return self._limited(self._filtered(self.load_dataset()))

    def _filtered(self, rows):
        """The rows whose columns hold load_dataset_config's col_filters values (all rows without them)."""
        filters = self.load_params.col_filters
        if not filters or self.config.user_function("load_dataset_config") is not None:
            return rows  # a loader function of user_script is given col_filters among its params
        missing = [name for name in filters if name not in rows.column_names]
        if missing:
            raise OlivepressError(f"data_configs.{self.config.name}.load_dataset_config.params.col_filters: the data "
                                  f"has no column '{missing[0]}'; its columns are {', '.join(rows.column_names)}")
        return rows.filter(lambda row: all(row[name] == value for name, value in filters.items()))

    def user_function(self, field: str) -> Callable | None:
        """The user_script function the component `field` names (run in this, the pass's, process), or None."""
        name = self.config.user_function(field)
        if name is None:
            return None
        assert self.config.user_script is not None  # the data config's validator demands it
        where = f"data_configs.{self.config.name}.{field}.type"
        return load_script(self.config.user_script, self.config.script_dir, where).function(name, where)

    def local_data_dir(self) -> str | None:
        """load_dataset_config's data_dir, which a function of user_script reads; an AzureML datastore path (written
        by Olive as an azureml_datastore resource) is not fetched for it."""
        data_dir = self.load_params.data_dir
        if data_dir is not None and data_dir.startswith("azureml:"):
            raise OlivepressError(f"data_configs.{self.config.name}.load_dataset_config.params.data_dir: {data_dir} is "
                                  "an AzureML datastore path, which olivepress does not download for a function of "
                                  "user_script; download it (az storage blob download-batch) and give the local folder")
        return data_dir

    def user_batches(self, records: Any = None, model_framework: str | None = None) -> Any:
        """What the dataloader function of user_script returns: func(records, **params), or, with call: data_dir,
        func(data_dir, batch_size, **other params) as Olive 0.2-0.6 called a dataloader_func (model_framework, the
        evaluated model's 'ONNX' or 'PyTorch', as a keyword too when given: Olive's metrics passed it)."""
        function = self.user_function("dataloader_config")
        assert function is not None, "user_batches: the data config names no dataloader function"
        component = self.config.dataloader_config
        params = component.params.model_dump(exclude_unset=True)
        if component.call == "records":
            return function(records, **params)
        batch_size = params.pop("batch_size", DataloaderParams.model_fields["batch_size"].default)
        if model_framework is not None:
            params["model_framework"] = model_framework
        return function(self.local_data_dir(), batch_size, **params)

    def graph_feeds(self, inputs: dict[str, Any], model_framework: str | None = None) -> list[dict[str, Any]]:
        """The dataloader function's batches as feeds of an ONNX graph whose inputs (name: numpy type) are `inputs`
        (a calibration reader it returns is read to its end)."""
        records = self.load_dataset() if self.config.user_function("load_dataset_config") else None
        where = f"data_configs.{self.config.name}.dataloader_config"
        return [graph_feed(as_row(batch), inputs, where)
                for batch in batches_of(self.user_batches(records, model_framework))]

    def _load_files(self, params: LoadDatasetParams):
        import datasets

        if params.data_files is None:
            if params.data_dir is None:
                raise OlivepressError(f"load_dataset_config.params: data_name '{params.data_name}' needs data_files or data_dir")
            return self._streamed(datasets.load_dataset(params.data_name, data_dir=params.data_dir, split=params.split,
                                                        streaming=params.streaming))
        parts = []
        for file in local_data_files(params.data_files):
            if params.data_name == "json":
                check_json_file(file)
            parts.append(self._streamed(datasets.load_dataset(params.data_name, data_files=[str(file)],
                                                              split=params.split, streaming=params.streaming)))
        return _concatenate(parts)

    def texts(self, tokenizer: Any, rows=None) -> list[str]:
        """The pre-processed text of each row (the first max_samples rows)."""
        rows = self.records() if rows is None else rows
        try:
            to_text = text_function(self.pre_process_params, list(rows.column_names), tokenizer)
        except OlivepressError as error:
            raise OlivepressError(f"data_configs.{self.config.name}.pre_process_data_config.params.{error}") from None
        return [to_text(row) for row in rows]

    def _limited(self, rows):
        if (function := self.user_function("pre_process_data_config")) is not None:
            return function(rows, **self.pre_process_params.model_dump(exclude_unset=True))
        limit = self.pre_process_params.max_samples
        return rows.select(range(min(limit, len(rows)))) if limit is not None else rows

    # ------------------------------------------------------------------ token rows

    def datasets(self, tokenizer: Any, eval_dataset_size: int | float | None = None):
        """Tokenized (train, eval or None) datasets with input_ids, labels (and attention_mask).

        `eval_dataset_size` overrides the pre-process parameter of the same name.
        """
        params = self.pre_process_params
        rows = self.records()
        eval_size = check_eval_size(eval_dataset_size) if eval_dataset_size is not None else params.eval_dataset_size
        if not len(rows):
            raise OlivepressError(f"data_configs.{self.config.name}: the data has no rows")
        if eval_size is None:
            return self._tokenized(tokenizer, rows, "train"), None
        if isinstance(eval_size, int) and eval_size >= len(rows):
            raise OlivepressError(
                f"data_configs.{self.config.name}: eval_dataset_size {eval_size} leaves no training rows "
                f"(the data has {len(rows)})"
            )
        split = rows.train_test_split(test_size=eval_size, seed=params.random_seed, shuffle=True)
        return self._tokenized(tokenizer, split["train"], "train"), self._tokenized(tokenizer, split["test"], "eval")

    def _tokenized(self, tokenizer: Any, rows, split: str):
        import datasets

        params = self.pre_process_params
        texts = self.texts(tokenizer, rows)
        token_lists = tokenize(tokenizer, texts, params.add_special_tokens, params.append_eos, total=len(texts))
        if params.corpus_strategy == "join":
            packed = pack(token_lists, params.max_seq_len)
            if not packed:
                count = sum(len(ids) for ids in tokenize(tokenizer, texts, params.add_special_tokens, params.append_eos))
                raise OlivepressError(
                    f"data_configs.{self.config.name}: the {split} data holds {count} tokens, fewer than max_seq_len "
                    f"{params.max_seq_len}; lower max_seq_len or use corpus_strategy 'line-by-line'"
                )
            columns = packed_columns(packed, params.use_attention_mask)
        else:
            pad_to = params.max_seq_len if params.pad_to_max_len else None
            columns = line_columns(token_lists, params.max_seq_len, pad_to, pad_id(tokenizer), params.use_attention_mask)
        return datasets.Dataset.from_dict(columns)

    def calibration_rows(self, tokenizer: Any, count: int, seq_len: int) -> torch.Tensor:
        """Up to `count` packed rows of exactly `seq_len` tokens, shape [n, seq_len], whatever the corpus strategy."""
        params = self.pre_process_params
        texts = self.texts(tokenizer)
        token_lists = tokenize(tokenizer, texts, params.add_special_tokens, params.append_eos, total=len(texts))
        rows = pack(token_lists, seq_len, max_rows=count)
        if not rows:
            total = sum(len(ids) for ids in tokenize(tokenizer, texts, params.add_special_tokens, params.append_eos))
            raise OlivepressError(
                f"data_configs.{self.config.name}: calibration data too short: {total} tokens, need at least {seq_len}"
            )
        return torch.tensor(rows, dtype=torch.long)

    def labelled_batches(self, tokenizer: Any, label2id: dict[str, int] | None = None) -> list[Batch] | None:
        """Olive's classification batches (huggingface_pre_process: input columns tokenized, with labels) when the
        rows hold the pre-processing's label_col; None when they do not (they are text for causal-LM rows)."""
        rows, params = self.records(), self.pre_process_params
        if isinstance(params.label_col, str) and params.label_col not in rows.column_names:
            return None
        try:
            return classification_batches(rows, params, tokenizer, self.dataloader_params.batch_size, label2id)
        except OlivepressError as error:
            raise OlivepressError(f"data_configs.{self.config.name}.{error}") from None

    def dataloader(self, tokenizer: Any, split: str = "train") -> Iterable[dict[str, torch.Tensor]]:
        """Batches of model inputs as dicts of tensors: the labelled rows' classification batches (their inputs),
        else the train or eval split of the token rows."""
        if split == "train" and (labelled := self.labelled_batches(tokenizer)) is not None:
            return [{name: torch.from_numpy(values) for name, values in inputs.items()} for inputs, _ in labelled]
        train, eval_ = self.datasets(tokenizer)
        if split not in ("train", "eval"):
            raise OlivepressError(f"unknown split {split!r}; use 'train' or 'eval'")
        data = train if split == "train" else eval_
        if data is None:
            raise OlivepressError(f"data_configs.{self.config.name}: no eval split (set eval_dataset_size)")
        params = self.dataloader_params
        return torch.utils.data.DataLoader(
            data, batch_size=params.batch_size, shuffle=params.shuffle, drop_last=params.drop_last,
            num_workers=params.num_workers, collate_fn=PadCollator(pad_id(tokenizer)),
        )


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _concatenate(parts: list):
    import datasets

    if all(part.column_names == parts[0].column_names for part in parts):
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    columns = list(dict.fromkeys(name for part in parts for name in part.column_names))
    rows = [row for part in parts for row in part]
    return datasets.Dataset.from_dict({name: [row.get(name) for row in rows] for name in columns})


def seed_data_file(name: str) -> Path:
    """A file of the shipped seed datasets (olivepress/data/seed)."""
    path = SEED_DIR / name
    if not path.is_file():
        raise OlivepressError(f"no seed data file named '{name}'; the seed files are {', '.join(SEED_FILES)}")
    return path


def default_calibration_data() -> DataConfig:
    """The shipped seed data (travel prompts and answers, tone phrases) as a data config, for quantizers given no data."""
    return DataConfig(
        name="olivepress_seed_data",
        load_dataset_config={"params": {"data_name": "json", "data_files": [str(seed_data_file(n)) for n in SEED_FILES]}},
        pre_process_data_config={"params": {"text_cols": ["prompt", "response", "phrase"]}},
    )
