"""The CUDA paths, on a machine with an NVIDIA GPU (skipped elsewhere: see the `gpu` marker in conftest.py)."""

import json
import logging
import math
from pathlib import Path

import pytest

from olivepress.config.sections import DataConfig
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel
from olivepress.passes.base import PassContext
from olivepress.passes.pytorch.lora import QLoRA
from olivepress.passes.pytorch.quantize import AWQ

pytestmark = pytest.mark.gpu

GPU = Accelerator("gpu", "CUDAExecutionProvider")


def gpu_context(folder: Path, *data: DataConfig) -> PassContext:
    (folder / "out").mkdir(parents=True)
    (folder / "scratch").mkdir()
    return PassContext(output_dir=folder / "out", scratch_dir=folder / "scratch", accelerator=GPU,
                       logger=logging.getLogger("test"), data_configs={d.name: d for d in data})


def sentences(folder: Path) -> DataConfig:
    source = folder / "train.jsonl"
    source.write_text("".join(json.dumps({"text": f"Sentence number {i} about Paris."}) + "\n" for i in range(32)))
    return DataConfig(name="train", load_dataset_config={"params": {"data_name": "json", "data_files": str(source)}},
                      pre_process_data_config={"params": {"max_seq_len": 32}})


def test_qlora_trains_on_cuda(tiny_llama, tmp_path):
    context = gpu_context(tmp_path, sentences(tmp_path))
    config = QLoRA.Config.model_validate({"train_data_config": "train", "r": 4,
                                          "training_args": {"max_steps": 3, "per_device_train_batch_size": 2}})
    output = QLoRA().run(HfModel(path=tiny_llama), config, context)
    assert context.metrics["train_steps"] == 3 and math.isfinite(context.metrics["train_loss"])
    assert (output.adapter_path / "adapter_config.json").is_file()


def test_awq_quantizes_on_cuda(tiny_llama, tmp_path):
    context = gpu_context(tmp_path)
    output = AWQ().run(HfModel(path=tiny_llama), AWQ.Config.model_validate({"group_size": 32}), context)
    config = json.loads((output.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"
