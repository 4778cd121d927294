"""Running one pass directly, without the engine or the cache, as the ONNX pass tests do."""

import logging
from pathlib import Path

from olivepress.config.sections import DataConfig
from olivepress.hardware import Accelerator
from olivepress.passes.base import PassContext


def run_pass(pass_class, model, folder: Path, data: DataConfig | None = None, **config):
    """The pass's output model and its metrics, written under `folder` on the CPU; `data` is the one data config the
    pass may name."""
    (folder / "out").mkdir(parents=True)
    (folder / "scratch").mkdir()
    context = PassContext(output_dir=folder / "out", scratch_dir=folder / "scratch",
                          accelerator=Accelerator("cpu", "CPUExecutionProvider"), logger=logging.getLogger("test"),
                          data_configs={data.name: data} if data else {})
    return pass_class().run(model, pass_class.Config.model_validate(config), context), context.metrics
