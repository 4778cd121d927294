"""A metric's rows and prompts: the data config's records (its eval split, when it sets one) and their prompts."""

from typing import Any

from olivepress.config.sections import DataConfig
from olivepress.data.text import template_fields
from olivepress.errors import OlivepressError


def evaluation_rows(data_config: DataConfig):
    """The records a metric reads: the first max_samples rows, and of those the held-out split when
    eval_dataset_size is set (the same split the container makes for training)."""
    from olivepress.data.container import HuggingfaceContainer

    params = data_config.pre_process_data_config.params
    rows = HuggingfaceContainer(data_config).load_dataset()
    if params.max_samples is not None:
        rows = rows.select(range(min(params.max_samples, len(rows))))
    if params.eval_dataset_size is not None:
        rows = rows.train_test_split(test_size=params.eval_dataset_size, seed=params.random_seed, shuffle=True)["test"]
    if not len(rows):
        raise OlivepressError(f"data_configs.{data_config.name}: the data has no rows")
    return rows


def prompts(data_config: DataConfig, rows, template: str | None, tokenizer: Any) -> list[str]:
    """Each row's prompt: `template` with {field}s filled in, or the row's pre-processed text."""
    from olivepress.data.container import HuggingfaceContainer

    if template is None:
        return HuggingfaceContainer(data_config).texts(tokenizer, rows)
    fields = template_fields(template)
    missing = [name for name in fields if name not in rows.column_names]
    if missing:
        raise OlivepressError(f"user_config.prompt_template: the data has no field '{missing[0]}'; "
                              f"its fields are {', '.join(rows.column_names)}")
    return [template.format_map({name: "" if row[name] is None else str(row[name]) for name in fields}) for row in rows]


def labels(rows, label_col: str) -> list[str]:
    if label_col not in rows.column_names:
        raise OlivepressError(f"user_config.label_col: the data has no field '{label_col}'; "
                              f"its fields are {', '.join(rows.column_names)}")
    return ["" if row[label_col] is None else str(row[label_col]) for row in rows]
