"""ModelBuilder: the ONNX Runtime GenAI model builder, as a pass."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import AliasChoices, Field

from olivepress.errors import OlivepressError
from olivepress.hardware import EXECUTION_PROVIDERS
from olivepress.models.handles import HfModel, ModelKind, OnnxModel
from olivepress.models.loading import quantization_method, read_model_config
from olivepress.models.onnx_adapters import (
    AttentionSizes,
    LoraTarget,
    onnx_adapter_weights,
    peft_targets,
)
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.onnx.builder_config import builder_input
from olivepress.passes.onnx.lora_graph import add_lora_branches
from olivepress.passes.onnx.model_files import load_onnx, save_onnx
from olivepress.passes.pytorch.capture_split_info import SPLIT_ASSIGNMENTS_KEY, read_split_assignments
from olivepress.progress import progress

CUDA_GRAPH_PROVIDERS = ("cuda", "NvTensorRtRtx")  # the builder's targets that can capture a CUDA graph


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
    enable_cuda_graph: bool | None = Field(
        None, description="Let the model run with CUDA graph capture (CUDA and TensorRT-RTX execution providers; "
                          "on others it is left out, with a warning). Unset: the builder's default."
    )
    search: dict[str, str | int | float | bool] | None = Field(
        None, description="Generation search options written into genai_config.json's search section "
                          "(e.g. {max_length: 2048}), over the builder's."
    )
    metadata_only: bool = Field(
        False, description="Take an ONNX model (e.g. from OnnxConversion) and write only genai_config.json and the "
                           "tokenizer files beside it, from the config.json in its folder."
    )


class ModelBuilder(Pass[HfModel | OnnxModel, ModelBuilderConfig]):
    """With an adapter on the input, the LoRA weights go into the graph as separate float MatMuls
    (never int4) under the naming contract of models.onnx_adapters; ExtractAdapters then makes them
    swappable inputs. The builder's own adapter option cannot load an adapter onto a quantized
    (AWQ/GPTQ) checkpoint, so there the base is built alone and the LoRA branches are added after."""

    name = "ModelBuilder"
    description = "Export a Hugging Face model (with its LoRA adapter, if any) to an ONNX Runtime GenAI model."
    version = "3"  # 3: the tied quantized embedding's scales and zero points shaped for onnxruntime
    accepts = ("hf", "onnx")
    produces = "onnx"
    Config = ModelBuilderConfig

    @classmethod
    def accepted_kinds(cls, config: ModelBuilderConfig) -> tuple[ModelKind, ...]:
        return ("onnx",) if config.metadata_only else ("hf",)

    def run(self, model: HfModel | OnnxModel, config: ModelBuilderConfig, context: PassContext) -> OnnxModel:
        if not (model.path / "config.json").is_file():
            raise OlivepressError(f"{model.path}: not a Hugging Face model folder (no config.json)")
        if isinstance(model, OnnxModel) or config.metadata_only:
            return _write_metadata(model, config, context)
        # Checked before building, so an adapter that cannot be exported fails fast.
        _check_tied_quantized_embedding(model.path, config)
        lora_targets = peft_targets(model.adapter_path) if model.adapter_path is not None else []
        adapter_after_build = bool(lora_targets) and quantization_method(model.path) is not None
        source = replace(model, path=builder_input(model.path, context.scratch_dir))
        command = builder_command(source, config, context, lora_targets, adapter_after_build)
        context.logger.debug("running: %s", " ".join(command))
        log_file = context.scratch_dir / "builder.log"
        layers = read_model_config(model.path).get("num_hidden_layers", 0)
        returncode = _run_with_progress(command, log_file, layers, cwd=context.scratch_dir)
        if returncode != 0:
            raise RuntimeError(f"the GenAI builder failed: {_last_error_line(log_file)}")
        _shape_tied_quantized_tables(OnnxModel(path=context.output_dir))
        _carry_split_assignments(model.path, OnnxModel(path=context.output_dir))
        if adapter_after_build:
            _add_adapter(model, context.output_dir)
        _set_search_options(context.output_dir, config.search)
        return OnnxModel(path=context.output_dir)


def _write_metadata(model: HfModel | OnnxModel, config: ModelBuilderConfig, context: PassContext) -> OnnxModel:
    """genai_config.json and the tokenizer files written beside a copy of an ONNX model's folder."""
    if not (isinstance(model, OnnxModel) and config.metadata_only):
        raise OlivepressError("metadata_only: ModelBuilder builds a Hugging Face model, or, with metadata_only: true, "
                              "writes the metadata of an ONNX model; the input model does not match")
    command = builder_command(HfModel(path=builder_input(model.path, context.scratch_dir)), config, context,
                              more_options={"config_only": "true", "filename": model.onnx_file_name})
    log_file = context.scratch_dir / "builder.log"
    if _run_with_progress(command, log_file, 0, cwd=context.scratch_dir) != 0:
        raise RuntimeError(f"the GenAI builder failed: {_last_error_line(log_file)}")
    for file in sorted(model.path.iterdir()):
        if not (context.output_dir / file.name).exists():  # the builder's genai_config.json and tokenizer win
            (shutil.copytree if file.is_dir() else shutil.copy2)(file, context.output_dir / file.name)
    _set_search_options(context.output_dir, config.search)
    return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def _check_tied_quantized_embedding(path: Path, config: ModelBuilderConfig) -> None:
    """A checkpoint whose embedding is its quantized LM head's table (quantization_config.embeds) holds no float
    embedding: the builder must read it as a GatherBlockQuantized over the head, which it does at int4 precision,
    with both the embedding and the head in the graph and their weights shared."""
    if not (read_model_config(path).get("quantization_config") or {}).get("embeds"):
        return
    shared = str(config.extra_options.get("shared_embeddings", True)).lower() not in ("false", "0")
    if config.precision != "int4" or config.exclude_lm_head or not shared:
        raise OlivepressError(f"{path}: its input embedding is stored as the quantized LM head's table "
                              f"(quantization_config.embeds), which the GenAI builder reads with precision int4, the "
                              f"LM head in the graph and shared_embeddings on; this pass asks for precision "
                              f"{config.precision}, exclude_lm_head {_option_text(config.exclude_lm_head)}, "
                              f"shared_embeddings {_option_text(shared)}")


def _shape_tied_quantized_tables(built: OnnxModel) -> None:
    """Give the scales and zero points that a GatherBlockQuantized shares with the MatMulNBits of a pre-quantized LM
    head (the builder's tied embedding of an awq/gptq checkpoint with quantization_config.embeds) the rank of the
    gathered data, [vocab, blocks] and [vocab, packed blocks]: the builder passes them flat, which onnxruntime's
    shape inference refuses for GatherBlockQuantized; MatMulNBits reads both shapes. Only dims change, not data."""
    proto = load_onnx(built, with_weights=False)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    changed = False
    for node in proto.graph.node:
        if node.op_type != "GatherBlockQuantized":
            continue
        vocab = _matmulnbits_rows(proto, node.input[2:4])
        for name in node.input[2:4]:
            tensor = initializers.get(name)
            if vocab and tensor is not None and len(tensor.dims) == 1:
                tensor.dims[:] = [vocab, tensor.dims[0] // vocab]
                changed = True
    if changed:
        import onnx

        onnx.save(proto, str(built.path / built.onnx_file_name))


def _carry_split_assignments(source: Path, built: OnnxModel) -> None:
    """CaptureSplitInfo's split_assignments (in the source's config.json) into the graph's metadata as
    'name=part;...', where SplitModel reads them, as Olive's ModelBuilder does: the builder names its nodes by the
    same module paths."""
    assignments = read_split_assignments(source)
    if assignments is None:
        return
    import onnx

    proto = load_onnx(built, with_weights=False)
    properties = {entry.key: entry.value for entry in proto.metadata_props}
    properties[SPLIT_ASSIGNMENTS_KEY] = ";".join(f"{name}={part}" for name, part in assignments.items())
    onnx.helper.set_model_props(proto, properties)
    onnx.save(proto, str(built.path / built.onnx_file_name))


def _matmulnbits_rows(proto, names: Sequence[str]) -> int | None:
    """N (the output rows) of the MatMulNBits that reads the scales or zero points `names`, if one does."""
    for node in proto.graph.node:
        if node.op_type == "MatMulNBits" and set(node.input[2:4]) & set(names):
            return next(attribute.i for attribute in node.attribute if attribute.name == "N")
    return None


def _set_search_options(output_dir: Path, search: dict[str, str | int | float | bool] | None) -> None:
    if not search:
        return
    genai_config_file = output_dir / "genai_config.json"
    genai_config = json.loads(genai_config_file.read_text(encoding="utf-8"))
    genai_config["search"] = {**genai_config.get("search", {}), **search}
    genai_config_file.write_text(json.dumps(genai_config, indent=4), encoding="utf-8")


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
    bar = progress(total=2 * layers or None, desc="ModelBuilder", unit="layer")
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
                    lora_targets: Sequence[LoraTarget] = (), adapter_after_build: bool = False,
                    more_options: Mapping[str, str] = MappingProxyType({})) -> list[str]:
    provider = config.execution_provider or _builder_provider(context.accelerator.execution_provider)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "--input", str(model.path), "--output", str(context.output_dir),
        "--precision", config.precision, "--execution_provider", provider,
        "--cache_dir", str(context.scratch_dir / "builder-cache"),
    ]
    options = {**_extra_options(model, config, lora_targets, adapter_after_build), **more_options}
    if config.enable_cuda_graph is not None:
        if provider in CUDA_GRAPH_PROVIDERS:
            options["enable_cuda_graph"] = _option_text(config.enable_cuda_graph)
        elif config.enable_cuda_graph:
            context.logger.warning("ModelBuilder: enable_cuda_graph applies to the %s execution providers; the %s "
                                   "model is built without it", " and ".join(CUDA_GRAPH_PROVIDERS), provider)
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
