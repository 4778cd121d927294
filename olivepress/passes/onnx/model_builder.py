"""ModelBuilder: the ONNX Runtime GenAI model builder, as a pass."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from tqdm import tqdm

from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.base import Pass, PassConfig, PassContext

BUILDER_EXECUTION_PROVIDERS = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
    "WebGpuExecutionProvider": "webgpu",
    "NvTensorRTRTXExecutionProvider": "NvTensorRtRtx",
}


def _alias(name: str) -> AliasChoices:
    """Olive spells the int4 options with an `int4_` prefix; both spellings are accepted."""
    return AliasChoices(name, f"int4_{name}")


class ModelBuilderConfig(PassConfig):
    precision: Literal["int4", "int8", "fp16", "bf16", "fp32"] = Field(
        "int4", description="Weight precision of the built model."
    )
    execution_provider: Literal["cpu", "cuda", "dml", "webgpu", "NvTensorRtRtx"] | None = Field(
        None, description="The builder's target; default follows the accelerator's execution provider."
    )
    block_size: Literal[16, 32, 64, 128, 256] | None = Field(
        None, validation_alias=_alias("block_size"), description="int4/int8 quantization block size (builder default 32)."
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, validation_alias=_alias("accuracy_level"),
        description="Minimum accuracy of the int4/int8 MatMul activations: 1 fp32, 2 fp16, 3 bf16, 4 int8.",
    )
    algo_config: Literal[
        "default", "rtn", "k_quant", "rtn_last", "k_quant_last", "k_quant_mixed", "k_quant_linear"
    ] | None = Field(None, validation_alias=_alias("algo_config"), description="int4/int8 weight quantization algorithm.")
    is_symmetric: bool | None = Field(
        None, validation_alias=_alias("is_symmetric"), description="Symmetric (int) or asymmetric (uint) quantization."
    )
    op_types_to_quantize: list[Literal["MatMul", "Gather"]] | None = Field(
        None, validation_alias=_alias("op_types_to_quantize"), description="Op types to weight-quantize."
    )
    nodes_to_exclude: list[str] | None = Field(
        None, description="Node names kept in float, e.g. /lm_head/MatMul."
    )
    exclude_embeds: bool = Field(False, description="Leave the embedding out: the model takes inputs_embeds.")
    exclude_lm_head: bool = Field(False, description="Leave the LM head out: the model returns hidden_states.")
    extra_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Further builder --extra_options, passed through as key=value."
    )


class ModelBuilder(Pass):
    name = "ModelBuilder"
    description = "Export a Hugging Face model to an ONNX Runtime GenAI model (int4/int8/fp16/bf16/fp32)."
    version = "1"
    accepts = ("hf",)
    produces = "onnx"
    Config = ModelBuilderConfig

    def run(self, model: HfModel, config: ModelBuilderConfig, context: PassContext) -> OnnxModel:
        if not (model.path / "config.json").is_file():
            raise OlivepressError(f"{model.path}: not a Hugging Face model folder (no config.json)")
        if model.adapter_path is not None:
            raise OlivepressError(
                "ModelBuilder does not take an adapter here; merge it first with a MergeAdapterWeights pass"
            )
        command = builder_command(model, config, context)
        context.logger.debug("running: %s", " ".join(command))
        log_file = context.scratch_dir / "builder.log"
        layers = json.loads((model.path / "config.json").read_text()).get("num_hidden_layers", 0)
        returncode = _run_with_progress(command, log_file, layers, cwd=context.scratch_dir)
        if returncode != 0:
            raise RuntimeError(f"the GenAI builder failed: {_last_error_line(log_file)}")
        return OnnxModel(path=context.output_dir)


def _run_with_progress(command: list[str], log_file: Path, layers: int, cwd: Path) -> int:
    """Run the builder, keeping its output in `log_file` and showing a bar over the layers it reads
    and then quantizes (the quantize phase only happens at int4/int8)."""
    bar = tqdm(total=2 * layers or None, desc="ModelBuilder", unit="layer", disable=None, leave=False)
    with open(log_file, "w", encoding="utf-8") as log, bar:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
                                   env=_offline_env(), text=True, errors="replace")
        for line in process.stdout:  # text mode reads tqdm's carriage returns as line ends
            log.write(line)
            if _READ_LAYER.match(line) or _QUANTIZED_LAYER.search(line):
                bar.update(1)
        return process.wait()


_READ_LAYER = re.compile(r"^Reading layer \d+")
_QUANTIZED_LAYER = re.compile(r"complete quantization of /model/layers\.\d+/mlp/down_proj/")


def builder_command(model: HfModel, config: ModelBuilderConfig, context: PassContext) -> list[str]:
    provider = config.execution_provider or _builder_provider(context.accelerator.execution_provider)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "--input", str(model.path), "--output", str(context.output_dir),
        "--precision", config.precision, "--execution_provider", provider,
        "--cache_dir", str(context.scratch_dir / "builder-cache"),
    ]
    options = _extra_options(model, config)
    if options:
        command += ["--extra_options", *(f"{key}={value}" for key, value in options.items())]
    return command


def _extra_options(model: HfModel, config: ModelBuilderConfig) -> dict[str, str]:
    options: dict[str, object] = {
        "block_size": config.block_size,
        "accuracy_level": config.accuracy_level,
        "algo_config": config.algo_config,
        "is_symmetric": config.is_symmetric,
        "op_types_to_quantize": "/".join(config.op_types_to_quantize) if config.op_types_to_quantize else None,
        "nodes_to_exclude": ",".join(config.nodes_to_exclude) if config.nodes_to_exclude else None,
        "exclude_embeds": config.exclude_embeds or None,
        "exclude_lm_head": config.exclude_lm_head or None,
        "hf_remote": True if model.load_kwargs.get("trust_remote_code") else None,
        **config.extra_options,
    }
    return {key: _option_text(value) for key, value in options.items() if value is not None}


def _option_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _builder_provider(execution_provider: str) -> str:
    try:
        return BUILDER_EXECUTION_PROVIDERS[execution_provider]
    except KeyError:
        raise OlivepressError(
            f"the GenAI builder cannot target {execution_provider}; it supports {', '.join(BUILDER_EXECUTION_PROVIDERS)}"
        ) from None


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _last_error_line(log_file: Path) -> str:
    lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[-300:]
    return lines[-1][-300:] if lines else "no output"
