"""LoRA training throughput on SmolLM2-135M-Instruct with the travel seed data, through the LoRA pass's training.

    .venv/bin/python benchmarks/finetune.py [--steps 20] [--seq_len 128] [--bf16 auto|true|false]
        [--torch_dtype float32|bfloat16] [--model FOLDER (e.g. an AWQ output; default SmolLM2)]

Settings of the issue's comparison with `olive finetune`: r=8 on q_proj,v_proj, batch 8 x 128 tokens (packed rows),
the travel template. Prints tokens/s, s/step, the average training loss and the peak RSS of the process.
"""

import argparse
import json
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from olivepress.config.sections import DataConfig
from olivepress.data.container import seed_data_file
from olivepress.hardware import Accelerator
from olivepress.models.default_model import resolve_known_model
from olivepress.models.handles import HfModel
from olivepress.passes.base import PassContext
from olivepress.passes.pytorch.lora import LoRA, default_bf16

TRAVEL_TEMPLATE = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"


def step_timer(seconds: list[float]):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            seconds.append(time.perf_counter() - self.started)

    return StepTimer()


def _key_value(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    return key, yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", type=Path, default=None, help="a Hugging Face folder (default SmolLM2-135M-Instruct)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--bf16", choices=["auto", "true", "false"], default="auto",
                        help="bf16 autocast (TrainingArguments bf16); auto: the pass's default for this CPU")
    parser.add_argument("--torch_dtype", choices=["float32", "bfloat16"], default="float32",
                        help="dtype of the base weights (bfloat16: pure bf16 training, as olive finetune does by default)")
    parser.add_argument("--lora_dropout", type=float, default=0.0, help="default 0, the pass's default (Olive's is 0.05)")
    parser.add_argument("--training_arg", action="append", default=[], metavar="KEY=VALUE",
                        help="any other TrainingArguments value (YAML scalar), e.g. torch_compile=true; repeatable")
    parser.add_argument("--no_attention_mask", action="store_true", help="packed rows without an attention_mask")
    args = parser.parse_args()

    model = HfModel(path=args.model or resolve_known_model("smollm2-135m-instruct", fetch=True))
    data = DataConfig(
        name="travel",
        load_dataset_config={"params": {"data_name": "json", "data_files": str(seed_data_file("data_sample_travel.jsonl"))}},
        pre_process_data_config={"params": {"text_template": TRAVEL_TEMPLATE, "max_seq_len": args.seq_len,
                                            "use_attention_mask": not args.no_attention_mask}},
    )
    config = LoRA.Config(
        r=8, alpha=16, lora_dropout=args.lora_dropout, target_modules=["q_proj", "v_proj"], train_data_config="travel", torch_dtype=args.torch_dtype,
        training_args={"max_steps": args.steps, "per_device_train_batch_size": args.batch_size,
                       **({} if args.bf16 == "auto" else {"bf16": args.bf16 == "true"}),
                       **dict(_key_value(item) for item in args.training_arg)},
    )
    with tempfile.TemporaryDirectory() as scratch:
        output_dir, scratch_dir = Path(scratch) / "out", Path(scratch) / "scratch"
        output_dir.mkdir()
        scratch_dir.mkdir()
        context = PassContext(output_dir=output_dir, scratch_dir=scratch_dir, accelerator=Accelerator("cpu", "CPUExecutionProvider"),
                              logger=logging.getLogger("benchmark"), data_configs={"travel": data})
        started = time.perf_counter()
        step_seconds: list[float] = []
        LoRA().train(model, config, context, callbacks=(step_timer(step_seconds),))
        wall_s = time.perf_counter() - started
    metrics = context.metrics
    tokens_per_step = args.batch_size * args.seq_len
    print(json.dumps({
        "model": str(args.model or "SmolLM2-135M-Instruct"), "steps": int(metrics["train_steps"]), "batch": f"{args.batch_size} x {args.seq_len}",
        "torch_dtype": args.torch_dtype, "lora_dropout": args.lora_dropout, "bf16_autocast": args.bf16 == "true" or (args.bf16 == "auto" and default_bf16(config, context)), "attention_mask": not args.no_attention_mask,
        "train_tokens_per_s": round(metrics["train_tokens_per_s"], 1),
        "s_per_step": round(tokens_per_step / metrics["train_tokens_per_s"], 3),
        "median_s_per_step": round(statistics.median(step_seconds), 3),
        "median_step_tokens_per_s": round(tokens_per_step / statistics.median(step_seconds), 1),
        "train_loss_avg": round(metrics["train_loss"], 4),
        "pass_wall_s": round(wall_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=2))


if __name__ == "__main__":
    main()
