"""Running one pass directly, without the engine or the cache, as the ONNX pass tests do."""

import logging
from pathlib import Path

from olivepress.config.sections import DataConfig
from olivepress.hardware import Accelerator
from olivepress.passes.base import PassContext


def pass_context(folder: Path, provider: str = "CPUExecutionProvider", data: DataConfig | None = None) -> PassContext:
    """A context whose output and scratch folders are new folders under `folder`, on the provider's device; `data` is
    the one data config the pass may name."""
    (folder / "out").mkdir(parents=True)
    (folder / "scratch").mkdir()
    device = "cpu" if provider == "CPUExecutionProvider" else "gpu"
    return PassContext(output_dir=folder / "out", scratch_dir=folder / "scratch",
                       accelerator=Accelerator(device, provider), logger=logging.getLogger("test"),
                       data_configs={data.name: data} if data else {})


def run_pass(pass_class, model, folder: Path, data: DataConfig | None = None, **config):
    """The pass's output model and its metrics, written under `folder` on the CPU; `data` is the one data config the
    pass may name."""
    context = pass_context(folder, data=data)
    return pass_class().run(model, pass_class.Config.model_validate(config), context), context.metrics
