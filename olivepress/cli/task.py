"""What the task commands (`finetune`, `quantize`, `auto-opt`) share: the model and data flags, and handing them to
the API's function of the same name, whose keyword arguments they are."""

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olivepress.cli.common import add_flag


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "model_name_or_path", "-m", "--model", required=True,
             help="a Hugging Face folder, an olivepress output folder, a hub id in the local HF cache, "
             "or a built-in model name (smollm2-135m-instruct)")
    add_flag(parser, "adapter_path", default=None, help="a PEFT adapter folder on top of the model")
    add_flag(parser, "trust_remote_code", action="store_true", help="allow the model's own code")
    add_flag(parser, "output_path", "-o", required=True, type=Path, help="where the result is written")
    add_flag(parser, "cache_dir", type=Path, default=None, help="the olivepress cache (default .olivepress-cache)")
    add_flag(parser, "device", choices=["cpu", "gpu"], default="cpu", help="where the passes run (default cpu)")
    add_flag(parser, "save_config", type=Path, default=None, metavar="FILE",
             help="also write the workflow document this command runs")
    add_flag(parser, "dry_run", action="store_true", help="print the plan; run nothing")


def add_data_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("data" + ("" if required else " (optional)"))
    add_flag(group, "data_config", type=Path, default=None, metavar="FILE",
             help="a JSON/YAML file holding one data config (as in a document's data_configs); "
             "replaces the data flags below")
    add_flag(group, "data_name", default=None,
             help="a datasets builder (json, csv, parquet, text) or a dataset in the local HF cache")
    add_flag(group, "data_files", default=None, help="data file(s), comma-separated")
    add_flag(group, "train_split", "--split", default=None, help="the split to read (default train)")
    add_flag(group, "text_template", default=None,
             help="e.g. '### Q: {prompt}\\n### A: {response}' (\\n and \\t are read as newline and tab)")
    add_flag(group, "text_field", "--text_cols", default=None, help="column(s) holding the text, comma-separated")
    add_flag(group, "use_chat_template", action="store_true", help="render a messages column with the tokenizer's chat template")
    add_flag(group, "max_seq_len", type=int, default=None, help="tokens per training/calibration row")
    add_flag(group, "max_samples", type=int, default=None, help="use at most this many records")


def keywords(args: argparse.Namespace, function: Callable[..., Any]) -> dict[str, Any]:
    """The parsed flags that `function` takes as keyword arguments (each flag's name is its parameter's)."""
    parameters = inspect.signature(function).parameters
    return {name: value for name, value in vars(args).items() if name in parameters}
