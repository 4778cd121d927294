"""`olivepress finetune --method lora|qlora|dora -m MODEL --data_files F ... -o OUT`: train a PEFT adapter.

Writes OUT/adapter/ (the PEFT adapter) and OUT/model/ (the base it belongs to). Any other
`--name value` is passed to Hugging Face TrainingArguments (e.g. `--warmup_steps 5`).
"""

import argparse

import yaml

from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.errors import OlivepressError

PASS_TYPES = {"lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA"}
EVAL_DATA_CONFIG_NAME = "eval_data"


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "finetune", parents=[common], help="fine-tune a LoRA/QLoRA/DoRA adapter (other flags go to TrainingArguments)"
    )
    add_flag(parser, "method", choices=sorted(PASS_TYPES), default="lora", help="the adapter kind (default lora)")
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
    training_args = task.given(per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                              max_steps=args.max_steps, num_train_epochs=args.num_train_epochs)
    training_args.update(parse_passthrough(args.unknown_flags))
    lora = task.given(type=PASS_TYPES[args.method], r=args.lora_r, alpha=args.lora_alpha,
                     lora_dropout=args.lora_dropout, torch_dtype=args.torch_dtype,
                     target_modules=args.target_modules.split(",") if args.target_modules else None,
                     eval_dataset_size=_count_or_fraction(args.eval_dataset_size))
    lora.update(train_data_config=task.DATA_CONFIG_NAME, training_args=training_args)
    data_configs = task.data_configs_section(args)
    if args.eval_split:
        if args.eval_dataset_size is not None:
            raise OlivepressError("give --eval_split or --eval_dataset_size, not both")
        data_configs.append(task.split_of(data_configs[0], args.eval_split, EVAL_DATA_CONFIG_NAME))
        lora["eval_data_config"] = EVAL_DATA_CONFIG_NAME
    document = {"input_model": task.input_model_section(args), "data_configs": data_configs,
                "passes": {args.method: lora}}
    task.run_document(document, args, "finetune")
    return 0


def parse_passthrough(flags: list[str]) -> dict[str, object]:
    """['--warmup_steps', '5', '--bf16'] -> {'warmup_steps': 5, 'bf16': True}; values are read as YAML scalars."""
    parsed: dict[str, object] = {}
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


def _count_or_fraction(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value >= 1 else value
