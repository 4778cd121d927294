"""Hugging Face TrainingArguments for the fine-tuning passes, and the trainer's progress bar."""

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.log import logger

# Set by the pass: checkpoints and logs go nowhere, and the pass shows its own progress bar.
PASS_OWNED = {"output_dir": None, "report_to": "none", "save_strategy": "no", "disable_tqdm": True}
# Where the pass's defaults differ from TrainingArguments' own.
DEFAULTS: dict[str, Any] = {"learning_rate": 2e-4, "lr_scheduler_type": "constant", "logging_steps": 1,
                             "dataloader_pin_memory": False}


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
    try:
        return TrainingArguments(**values)
    except (ValueError, TypeError) as error:
        raise OlivepressError(f"training_args: {str(error).strip().splitlines()[0]}") from None


def progress_callback(description: str):
    """A TrainerCallback showing a bar over the training steps with the latest loss (tqdm adds steps/s and ETA)."""
    from transformers import TrainerCallback

    class ProgressBar(TrainerCallback):
        def __init__(self):
            self.bar: tqdm | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=state.max_steps, desc=description, unit="step", disable=None, leave=False)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return ProgressBar()
