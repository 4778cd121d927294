"""Hugging Face TrainingArguments for the fine-tuning passes, their Trainer, and its progress report."""

import ctypes
import dataclasses
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.log import logger
from olivepress.progress import Progress, duration, progress, say

# Set by the pass: checkpoints and logs go nowhere, and the pass shows its own progress bar.
PASS_OWNED = {"output_dir": None, "report_to": "none", "save_strategy": "no", "disable_tqdm": True}
# Where the pass's defaults differ from TrainingArguments' own.
DEFAULTS: dict[str, Any] = {"learning_rate": 2e-4, "lr_scheduler_type": "constant", "logging_steps": 1,
                             "dataloader_pin_memory": False, "activation_checkpointing": True}
ESTIMATE_AFTER_STEPS = 1  # the estimate of the whole run comes after this many steps
LONG_RUN_S = 3600.0  # a CPU run estimated longer than this is warned about, naming the flags that shorten it
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter: allocations from this size up get their own pages
MMAP_THRESHOLD_BYTES = 2**20
# From this many tokens a step, freed memory goes back to the system (return_freed_memory): below it the activations
# are small and the page faults of fresh pages cost more than the memory saved (1.55x slower steps at 8 x 128 on
# SmolLM2).
LARGE_STEP_TOKENS = 4096


@cache
def training_argument_names() -> tuple[str, ...]:
    from transformers import TrainingArguments

    return tuple(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


def check_training_args(args: dict[str, Any]) -> dict[str, Any]:
    """The args, when every key is a TrainingArguments field; else ValueError with a 'did you mean'.

    Older names (evaluation_strategy) are rewritten by the document's migration, not here."""
    for key in args:
        names = training_argument_names()
        if key not in names:
            raise ValueError(f"unknown TrainingArguments key '{key}'{did_you_mean(key, list(names))}")
    return args


def training_arguments(user_args: dict[str, Any], output_dir: Path, **pass_args: Any):
    """TrainingArguments from the pass's defaults, the pass's own settings and the user's keys (which win),
    with the keys the pass owns forced."""
    from transformers import TrainingArguments

    for key in PASS_OWNED.keys() & user_args.keys():
        logger.warning("training_args.%s is set by the pass; ignoring the given value", key)
    values = {**DEFAULTS, **pass_args, **user_args, **PASS_OWNED, "output_dir": str(output_dir)}
    if values.get("load_best_model_at_end"):
        # the best model is read back from its checkpoint (in the scratch output_dir): TrainingArguments requires
        # a save at each evaluation
        values["save_strategy"] = values.get("eval_strategy", "no")
        if "eval_steps" in values:
            values["save_steps"] = values["eval_steps"]
    try:
        return TrainingArguments(**values)
    except (ValueError, TypeError) as error:
        raise OlivepressError(f"training_args: {str(error).strip().splitlines()[0]}") from None


def return_freed_memory() -> None:
    """Have glibc give freed tensors back to the system at once. By default it keeps blocks of up to 32 MB in its
    heap for reuse, which fragments: on SmolLM2 at 2 x 1024 tokens that cache was a third of the peak (1.90 GB
    against 1.29 GB). Smaller blocks stay in the heap, sparing a system call per small tensor."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl)
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def chunked_loss_trainer(**trainer_args: Any):
    """A transformers Trainer whose loss never holds the full logits (chunked_loss), for the models it knows."""
    import transformers

    from olivepress.passes.pytorch.chunked_loss import causal_lm_loss, decoder_and_head

    class ChunkedLossTrainer(transformers.Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            unwrapped = self.accelerator.unwrap_model(model)
            parts = decoder_and_head(unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped)
            if parts is None or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            decoder, head = parts
            features = {name: value for name, value in inputs.items() if name != "labels"}
            # the decoder is called directly, past the autocast wrapper accelerate puts on the model's forward
            with self.accelerator.autocast():
                hidden = decoder(**features, use_cache=False).last_hidden_state
                loss = causal_lm_loss(hidden, head, inputs["labels"], num_items_in_batch)
            return (loss, {"loss": loss}) if return_outputs else loss

    return ChunkedLossTrainer(**trainer_args)


def progress_callback(description: str, row_tokens: int, on_cpu: bool):
    """A TrainerCallback that says the cost before training (steps x batch x sequence tokens) and the estimated
    time after the first step, then shows the progress with the latest loss and tokens/s."""
    from transformers import TrainerCallback

    class ProgressReport(TrainerCallback):
        def __init__(self):
            self.bar: Progress | None = None
            self.started = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
            say(f"{description}: {state.max_steps} steps x {batch} rows x {row_tokens} tokens = "
                f"{state.max_steps * batch * row_tokens:,} tokens")
            self.bar = progress(total=state.max_steps, desc=description, unit="step")
            self.started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is None:
                return
            elapsed = time.monotonic() - self.started
            self.bar.note(**{"tokens/s": f"{state.num_input_tokens_seen / max(elapsed, 1e-9):.0f}"})
            self.bar.update(state.global_step - self.bar.n)
            if state.global_step == ESTIMATE_AFTER_STEPS < state.max_steps:
                say_estimate(description, elapsed / state.global_step * state.max_steps, on_cpu)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.note(loss=f"{logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return ProgressReport()


def say_estimate(description: str, total_s: float, on_cpu: bool) -> None:
    say(f"{description}: about {duration(total_s)} in all at this pace")
    if on_cpu and total_s > LONG_RUN_S:
        logger.warning("%s: training will take about %s on CPU; shorten it with --max_seq_len, --batch_size or "
                       "--max_steps (in a workflow: max_seq_len, per_device_train_batch_size, max_steps)",
                       description, duration(total_s))
