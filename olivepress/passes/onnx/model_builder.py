"""ModelBuilder: the ONNX Runtime GenAI model builder, as a pass."""

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from tqdm import tqdm

from olivepress.errors import OlivepressError
from olivepress.hardware import EXECUTION_PROVIDERS
from olivepress.models.handles import HfModel, OnnxModel
from olivepress.models.loading import quantization_method, read_model_config
from olivepress.models.onnx_adapters import (
    AttentionSizes,
    LoraTarget,
    onnx_adapter_weights,
    peft_targets,
)
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.onnx.lora_graph import add_lora_branches
from olivepress.passes.onnx.model_files import load_onnx, save_onnx


def _alias(name: str) -> AliasChoices:
    """Olive spells the int4 options with an `int4_` prefix; both spellings are accepted."""
    return AliasChoices(name, f"int4_{name}")


class ModelBuilderConfig(PassConfig):
    search_defaults = {
        "block_size": (32, 64, 128), "algo_config": ("default", "rtn", "k_quant_last"), "accuracy_level": (1, 4),
    }

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


class ModelBuilder(Pass[HfModel, ModelBuilderConfig]):
    """With an adapter on the input, the LoRA weights go into the graph as separate float MatMuls
    (never int4) under the naming contract of models.onnx_adapters; ExtractAdapters then makes them
    swappable inputs. The builder's own adapter option cannot load an adapter onto a quantized
    (AWQ/GPTQ) checkpoint, so there the base is built alone and the LoRA branches are added after."""

    name = "ModelBuilder"
    description = "Export a Hugging Face model (with its LoRA adapter, if any) to an ONNX Runtime GenAI model."
    version = "2"
    accepts = ("hf",)
    produces = "onnx"
    Config = ModelBuilderConfig

    def run(self, model: HfModel, config: ModelBuilderConfig, context: PassContext) -> OnnxModel:
        if not (model.path / "config.json").is_file():
            raise OlivepressError(f"{model.path}: not a Hugging Face model folder (no config.json)")
        # Checked before building, so an adapter that cannot be exported fails fast.
        lora_targets = peft_targets(model.adapter_path) if model.adapter_path is not None else []
        adapter_after_build = bool(lora_targets) and quantization_method(model.path) is not None
        command = builder_command(model, config, context, lora_targets, adapter_after_build)
        context.logger.debug("running: %s", " ".join(command))
        log_file = context.scratch_dir / "builder.log"
        layers = read_model_config(model.path).get("num_hidden_layers", 0)
        returncode = _run_with_progress(command, log_file, layers, cwd=context.scratch_dir)
        if returncode != 0:
            raise RuntimeError(f"the GenAI builder failed: {_last_error_line(log_file)}")
        if adapter_after_build:
            _add_adapter(model, context.output_dir)
        return OnnxModel(path=context.output_dir)


def _add_adapter(model: HfModel, output_dir: Path) -> None:
    assert model.adapter_path is not None  # called for models with an adapter only
    built = OnnxModel(path=output_dir)
    proto = load_onnx(built)
    dtype = _io_dtype(proto)
    sizes = AttentionSizes.from_hf_config(read_model_config(model.path))
    add_lora_branches(proto, onnx_adapter_weights(model.adapter_path, sizes, dtype))
    save_onnx(proto, output_dir, built.onnx_file_name)


def _io_dtype(proto) -> str:
    """The float type the graph computes in (its first output's), which the LoRA weights must share."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return tensor_dtype_to_np_dtype(proto.graph.output[0].type.tensor_type.elem_type).name


def _run_with_progress(command: list[str], log_file: Path, layers: int, cwd: Path) -> int:
    """Run the builder, keeping its output in `log_file` and showing a bar over the layers it reads
    and then quantizes (the quantize phase only happens at int4/int8)."""
    bar = tqdm(total=2 * layers or None, desc="ModelBuilder", unit="layer", disable=None, leave=False)
    with open(log_file, "w", encoding="utf-8") as log, bar:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
                                   env=_offline_env(), text=True, errors="replace")
        assert process.stdout is not None  # piped above
        for line in process.stdout:  # text mode reads tqdm's carriage returns as line ends
            log.write(line)
            if _READ_LAYER.match(line) or _QUANTIZED_LAYER.search(line):
                bar.update(1)
        return process.wait()


_READ_LAYER = re.compile(r"^Reading layer \d+")
_QUANTIZED_LAYER = re.compile(r"complete quantization of /model/layers\.\d+/mlp/down_proj/")


def builder_command(model: HfModel, config: ModelBuilderConfig, context: PassContext,
                    lora_targets: Sequence[LoraTarget] = (), adapter_after_build: bool = False) -> list[str]:
    provider = config.execution_provider or _builder_provider(context.accelerator.execution_provider)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "--input", str(model.path), "--output", str(context.output_dir),
        "--precision", config.precision, "--execution_provider", provider,
        "--cache_dir", str(context.scratch_dir / "builder-cache"),
    ]
    options = _extra_options(model, config, lora_targets, adapter_after_build)
    if options:
        command += ["--extra_options", *(f"{key}={value}" for key, value in options.items())]
    return command


def _extra_options(model: HfModel, config: ModelBuilderConfig, lora_targets: Sequence[LoraTarget],
                   adapter_after_build: bool) -> dict[str, str]:
    nodes_to_exclude = list(config.nodes_to_exclude or [])
    adapter_options: dict[str, object] = {}
    if adapter_after_build:
        adapter_options["fuse_qkv"] = False  # keeps q/k/v apart, as the builder lays out a graph with LoRA
    elif lora_targets:
        adapter_options["adapter_path"] = model.adapter_path
        if config.precision in ("int4", "int8"):
            nodes_to_exclude += [target.lora_node(which) for target in lora_targets for which in "AB"]
    options: dict[str, object] = {
        "block_size": config.block_size,
        "accuracy_level": config.accuracy_level,
        "algo_config": config.algo_config,
        "is_symmetric": config.is_symmetric,
        "op_types_to_quantize": "/".join(config.op_types_to_quantize) if config.op_types_to_quantize else None,
        "nodes_to_exclude": ",".join(nodes_to_exclude) if nodes_to_exclude else None,
        "exclude_embeds": config.exclude_embeds or None,
        "exclude_lm_head": config.exclude_lm_head or None,
        "hf_remote": True if model.load_kwargs.get("trust_remote_code") else None,
        **adapter_options,
        **config.extra_options,
    }
    return {key: _option_text(value) for key, value in options.items() if value is not None}


def _option_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _builder_provider(execution_provider: str) -> str:
    known = EXECUTION_PROVIDERS.get(execution_provider)
    if known is None or known.builder_name is None:
        supported = [name for name, provider in EXECUTION_PROVIDERS.items() if provider.builder_name]
        raise OlivepressError(f"the GenAI builder cannot target {execution_provider}; it supports {', '.join(supported)}")
    return known.builder_name


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _last_error_line(log_file: Path) -> str:
    lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[-300:]
    return lines[-1][-300:] if lines else "no output"
