"""What the task commands (`finetune`, `quantize`) share: model and data flags, and running the
workflow document they build through the same loader and engine as `olivepress run`."""

import argparse
import json
from pathlib import Path
from typing import Any

from olivepress.cli.common import add_flag, check_workflow
from olivepress.cli.run import print_plan, print_result
from olivepress.config.source import SourceDocument, read_document
from olivepress.engine.runner import Engine
from olivepress.errors import OlivepressError

DATA_CONFIG_NAME = "data"


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
    parser.set_defaults(data_required=required)


def input_model_section(args: argparse.Namespace) -> dict[str, Any]:
    section: dict[str, Any] = {"type": "HfModel", "model_path": args.model_name_or_path}
    if args.adapter_path:
        section["adapter_path"] = args.adapter_path
    if args.trust_remote_code:
        section["load_kwargs"] = {"trust_remote_code": True}
    return section


def data_configs_section(args: argparse.Namespace, extra_pre_process: dict[str, Any] | None = None) -> list[dict]:
    """The one data config the flags describe, named DATA_CONFIG_NAME; [] when no data was given."""
    if args.data_config is not None:
        if args.data_name or args.data_files:
            raise OlivepressError("--data_config replaces --data_name/--data_files; give one or the other")
        config = read_document(args.data_config).data
        if not isinstance(config, dict):
            raise OlivepressError(f"--data_config {args.data_config}: expected one data config (a mapping)")
        return [{**config, "name": DATA_CONFIG_NAME}]
    if not (args.data_name or args.data_files):
        if args.data_required:
            raise OlivepressError("no training data: give --data_name and --data_files, or --data_config FILE")
        return []
    load = given(data_name=args.data_name or _builder_for(args.data_files),
                data_files=_split_list(args.data_files), split=args.train_split)
    pre_process = given(text_template=unescape(args.text_template), text_cols=_split_list(args.text_field),
                       use_chat_template=args.use_chat_template or None, max_seq_len=args.max_seq_len,
                       max_samples=args.max_samples, **(extra_pre_process or {}))
    return [{"name": DATA_CONFIG_NAME, "type": "HuggingfaceContainer",
             "load_dataset_config": {"params": load}, "pre_process_data_config": {"params": pre_process}}]


def split_of(data_config: dict[str, Any], split: str, name: str) -> dict[str, Any]:
    """The same data config reading another split."""
    load = data_config["load_dataset_config"]
    params = load.get("params", load)
    load = {**load, "params": {**params, "split": split}} if "params" in load else {**load, "split": split}
    return {**data_config, "name": name, "load_dataset_config": load}


def run_document(document: dict[str, Any], args: argparse.Namespace, command: str) -> Engine:
    """Validate the built document like a file (same errors), then run it (or print its plan)."""
    engine_section = document.setdefault("engine", {})
    engine_section["output_dir"] = str(args.output_path)
    if args.cache_dir is not None:
        engine_section["cache_dir"] = str(args.cache_dir)
    if args.device == "gpu" and "systems" not in document:
        document["systems"] = {"local": {"type": "LocalSystem", "accelerators": [{"device": "gpu"}]}}
    if args.save_config is not None:
        args.save_config.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    workflow = check_workflow(SourceDocument(data=document, file=f"<olivepress {command}>"))
    engine = Engine(workflow)
    if args.dry_run:
        print_plan(engine)
        return engine
    print_result(engine.run())
    return engine


def unescape(text: str | None) -> str | None:
    """Backslash-n and backslash-t as typed in a shell (the Olive lab passes its template so) become a newline and a tab."""
    return None if text is None else text.replace("\\n", "\n").replace("\\t", "\t")


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not None."""
    return {key: value for key, value in values.items() if value is not None}


def _split_list(value: str | None) -> list[str] | str | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items[0] if len(items) == 1 else items


def _builder_for(data_files: str) -> str:
    """The datasets builder for the first file's extension (.jsonl -> json)."""
    suffix = Path(data_files.split(",")[0].strip()).suffix.lower()
    builders = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
    if suffix not in builders:
        raise OlivepressError(f"--data_files {data_files}: cannot tell the format from '{suffix}'; give --data_name")
    return builders[suffix]
