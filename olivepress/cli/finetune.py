"""`olivepress finetune --method lora|qlora|dora -m MODEL --data_files F ... -o OUT`: train a PEFT adapter.

Writes OUT/adapter/ (the PEFT adapter) and OUT/model/ (the base it belongs to). Any other
`--name value` is passed to Hugging Face TrainingArguments (e.g. `--warmup_steps 5`).
"""

import argparse
from typing import Any

import yaml

from olivepress import api
from olivepress.api.tasks import FINETUNE_PASS_TYPES
from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.cli.run import print_outcome
from olivepress.errors import OlivepressError


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "finetune", parents=[common], help="fine-tune a LoRA/QLoRA/DoRA adapter (other flags go to TrainingArguments)"
    )
    add_flag(parser, "method", choices=sorted(FINETUNE_PASS_TYPES), default="lora", help="the adapter kind (default lora)")
    task.add_model_flags(parser)
    task.add_data_flags(parser, required=True)
    group = parser.add_argument_group("adapter and training")
    add_flag(group, "lora_r", type=int, default=None, help="adapter rank")
    add_flag(group, "lora_alpha", type=float, default=None, help="adapter scaling numerator")
    add_flag(group, "lora_dropout", type=float, default=None)
    add_flag(group, "target_modules", default=None, help="module names, comma-separated (default: per architecture)")
    add_flag(group, "torch_dtype", choices=["float32", "bfloat16", "float16"], default=None)
    add_flag(group, "eval_split", default=None, help="evaluate on this split of the same data (e.g. test)")
    add_flag(group, "eval_dataset_size", type=float, default=None,
             help="or hold out this many records (>= 1) or this fraction (< 1) of the training data")
    add_flag(group, "batch_size", "--per_device_train_batch_size", type=int, default=None)
    add_flag(group, "learning_rate", type=float, default=None)
    add_flag(group, "max_steps", type=int, default=None)
    add_flag(group, "num_train_epochs", type=float, default=None)
    parser.set_defaults(handler=main, passes_unknown_flags=True)


def main(args: argparse.Namespace) -> int:
    print_outcome(api.finetune(**task.keywords(args, api.finetune), **parse_passthrough(args.unknown_flags)))
    return 0


def parse_passthrough(flags: list[str]) -> dict[str, Any]:
    """['--warmup_steps', '5', '--bf16'] -> {'warmup_steps': 5, 'bf16': True}; values are read as YAML scalars."""
    parsed: dict[str, Any] = {}
    index = 0
    while index < len(flags):
        flag = flags[index]
        if not flag.startswith("--") or len(flag) == 2:
            raise OlivepressError(f"unexpected argument '{flag}'")
        name, sep, value = flag[2:].partition("=")
        name = name.replace("-", "_")
        if not sep:
            has_value = index + 1 < len(flags) and not flags[index + 1].startswith("--")
            value = flags[index + 1] if has_value else "true"
            index += has_value
        parsed[name] = yaml.safe_load(value)
        index += 1
    return parsed
