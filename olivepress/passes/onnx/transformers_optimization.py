"""OrtTransformersOptimization: ONNX Runtime's transformer graph fusions, as a pass."""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import (
    ExternalDataOptions,
    copy_side_files,
    load_onnx,
    onnx_path,
    save_onnx,
)

# Hugging Face model types whose graphs the optimizer fuses under another of its model types.
HF_MODEL_TYPES = {
    "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert", "distilbert": "bert", "electra": "bert",
    "deberta": "bert", "deberta-v2": "bert", "llama": "gpt2", "gptj": "gpt2", "whisper": "bart",
}


class OrtTransformersOptimizationConfig(ExternalDataOptions):
    added_fields = ("use_gqa", "num_key_value_heads")  # out of the cache key while at their defaults
    model_type: str | None = Field(
        None, description="The optimizer's model type (bert, gpt2, bart, t5, ...); default from the model "
                          "folder's config.json."
    )
    num_heads: int = Field(0, ge=0, description="Attention heads; 0 = from config.json, else detected from the graph.")
    hidden_size: int = Field(0, ge=0, description="Hidden size; 0 = from config.json, else detected from the graph.")
    opt_level: Literal[0, 1, 2, 99] | None = Field(
        None, description="ONNX Runtime graph optimization level run before the fusions; default by model type."
    )
    only_onnxruntime: bool = Field(False, description="Run ONNX Runtime's graph optimizations only, no Python fusions.")
    float16: bool = Field(False, description="Convert the optimized model to float16.")
    keep_io_types: bool = Field(True, description="With float16: keep float32 graph inputs and outputs.")
    force_fp32_ops: list[str] | None = Field(None, description="With float16: op types kept in float32.")
    force_fp32_nodes: list[str] | None = Field(None, description="With float16: node names kept in float32.")
    force_fp16_inputs: dict[str, list[int]] | None = Field(
        None, description="With float16: inputs (by position) of these op types converted to float16 even where "
                          "they would stay float32, e.g. {GroupNorm: [0, 1, 2]}."
    )
    use_gpu: bool = Field(False, description="Optimize for the CUDA execution provider.")
    use_gqa: bool = Field(
        False, description="After the float16 conversion, replace each MultiHeadAttention node (with past key/values, "
        "fed by an attention_mask input) with GroupQueryAttention, as Olive does; needs float16."
    )
    num_key_value_heads: int = Field(
        0, ge=0, description="With use_gqa: key/value heads of GroupQueryAttention; 0 = config.json's "
        "num_key_value_heads, else as many as the attention heads."
    )
    optimization_options: dict[str, bool | int | str] = Field(
        default_factory=dict, description="FusionOptions to set, e.g. {enable_gelu_approximation: true}."
    )


    @model_validator(mode="after")
    def _gqa_in_float16(self) -> "OrtTransformersOptimizationConfig":
        if self.use_gqa and not self.float16:
            raise ValueError("use_gqa: GroupQueryAttention replaces attention in the float16 model; set float16: true")
        return self


class OrtTransformersOptimization(Pass[OnnxModel, OrtTransformersOptimizationConfig]):
    name = "OrtTransformersOptimization"
    description = "Fuse transformer subgraphs (Attention, LayerNorm, Gelu, ...) with the ONNX Runtime transformers optimizer."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OrtTransformersOptimizationConfig

    def run(self, model: OnnxModel, config: OrtTransformersOptimizationConfig, context: PassContext) -> OnnxModel:
        from onnxruntime.transformers.optimizer import optimize_model

        hf_config = _hf_config(model.path)
        model_type = config.model_type or _model_type_from(hf_config, model.path)
        options = fusion_options(model_type, config.optimization_options)
        nodes_before = len(load_onnx(model, with_weights=False).graph.node)
        optimizer = optimize_model(
            str(onnx_path(model)), model_type=model_type,
            num_heads=config.num_heads or _first(hf_config, "num_attention_heads", "n_head"),
            hidden_size=config.hidden_size or _first(hf_config, "hidden_size", "n_embd"),
            optimization_options=options, opt_level=config.opt_level, use_gpu=config.use_gpu,
            only_onnxruntime=config.only_onnxruntime,
        )
        float16_options = {"op_block_list": config.force_fp32_ops, "node_block_list": config.force_fp32_nodes,
                           "force_fp16_inputs": config.force_fp16_inputs}
        if config.float16:
            optimizer.convert_float_to_float16(keep_io_types=config.keep_io_types, **float16_options)
            if config.use_gqa:
                optimizer = _with_gqa(optimizer, config.num_key_value_heads or _first(hf_config, "num_key_value_heads"))
        elif any(value is not None for value in float16_options.values()):
            context.logger.warning("OrtTransformersOptimization: force_fp32_ops, force_fp32_nodes and "
                                   "force_fp16_inputs apply to the float16 conversion; float16 is off")
        save_onnx(optimizer.model, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        fused = {f"fused_{op}": count for op, count in optimizer.get_fused_operator_statistics().items() if count}
        context.metrics.update({"nodes_before": nodes_before, "nodes_after": len(optimizer.model.graph.node), **fused})
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def _with_gqa(optimizer, kv_num_heads: int):
    """The model with each MultiHeadAttention node (query, key, value, ..., past_key, past_value) replaced by a
    GroupQueryAttention node, as Olive's use_gqa does: the sequence lengths it needs come from the attention_mask
    input (its row sums less one, and its width). 0 heads: as many key/value heads as query heads."""
    from onnx import TensorProto, helper

    graph = optimizer.model.graph
    attentions = [node for node in graph.node if node.op_type == "MultiHeadAttention"]
    if not attentions:
        raise OlivepressError("use_gqa: the optimized graph has no MultiHeadAttention node to replace (GroupQuery"
                              "Attention takes the place of a decoder's attention with past key/values)")
    if "attention_mask" not in {value.name for value in graph.input}:
        raise OlivepressError("use_gqa: GroupQueryAttention reads the sequence lengths from an 'attention_mask' "
                              "input, which the graph does not have")
    if any(len(node.input) < 8 or not node.input[6] or not node.input[7] for node in attentions):
        raise OlivepressError("use_gqa: a MultiHeadAttention node has no past key/value inputs; GroupQueryAttention "
                              "replaces a decoder's attention with its KV cache")
    optimizer.add_initializer(helper.make_tensor("gqa_one", TensorProto.INT64, [1], [1]))
    mask_nodes = [
        helper.make_node("ReduceSum", ["attention_mask", "gqa_one"], ["gqa_mask_sums"]),
        helper.make_node("Sub", ["gqa_mask_sums", "gqa_one"], ["gqa_seqlens_k_int64"]),
        helper.make_node("Cast", ["gqa_seqlens_k_int64"], ["gqa_seqlens_k"], to=TensorProto.INT32),
        helper.make_node("Shape", ["attention_mask"], ["gqa_mask_shape"]),
        helper.make_node("Gather", ["gqa_mask_shape", "gqa_one"], ["gqa_total_len_int64"], axis=0),
        helper.make_node("Cast", ["gqa_total_len_int64"], ["gqa_total_len"], to=TensorProto.INT32),
    ]
    for node in mask_nodes:
        node.name = optimizer.create_node_name(node.op_type)
    graph.node.extend(mask_nodes)
    for node in attentions:
        heads = next(attribute.i for attribute in node.attribute if attribute.name == "num_heads")
        inputs = [*node.input[:3], node.input[6], node.input[7], "gqa_seqlens_k", "gqa_total_len"]
        graph.node.remove(node)
        graph.node.append(helper.make_node(
            "GroupQueryAttention", inputs, list(node.output), name=node.name.replace("MultiHeadAttention", "GQA"),
            domain="com.microsoft", num_heads=heads, kv_num_heads=kv_num_heads or heads))
    optimizer.prune_graph()
    optimizer.update_graph(allow_remove_graph_inputs=True)
    optimizer.topological_sort()
    return optimizer


def _hf_config(folder: Path) -> dict[str, Any]:
    """The config.json copied beside the ONNX model (OnnxConversion copies it), or {} without one."""
    config_file = folder / "config.json"
    return json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}


def _model_type_from(hf_config: dict[str, Any], folder: Path) -> str:
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    hf_type = hf_config.get("model_type")
    if hf_type is None:
        raise OlivepressError(
            f"model_type: not set, and {folder} has no config.json naming one; set model_type to one of "
            f"{', '.join(MODEL_TYPES)}"
        )
    model_type = hf_type if hf_type in MODEL_TYPES else HF_MODEL_TYPES.get(hf_type)
    if model_type is None:
        raise OlivepressError(
            f"model_type: not set, and the optimizer has no fusions for config.json's model_type '{hf_type}'; "
            f"set model_type to one of {', '.join(MODEL_TYPES)}"
        )
    return model_type


def fusion_options(model_type: str, options: dict[str, bool | int | str]):
    """FusionOptions for `model_type` with `options` set on it; unknown model types and options are errors."""
    from onnxruntime.transformers.fusion_options import AttentionOpType, FusionOptions
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if model_type not in MODEL_TYPES:
        raise OlivepressError(f"model_type: unknown model type '{model_type}'{did_you_mean(model_type, list(MODEL_TYPES))}; "
                              f"the optimizer knows {', '.join(MODEL_TYPES)}")
    fusion = FusionOptions(model_type)
    known = list(vars(fusion))
    for key, value in options.items():
        if key not in known:
            raise OlivepressError(f"optimization_options: unknown option '{key}'{did_you_mean(key, known)}")
        if key == "attention_op_type":
            try:
                value = AttentionOpType(value)
            except ValueError:
                raise OlivepressError(
                    f"optimization_options.attention_op_type: '{value}' is none of "
                    f"{', '.join(str(op) for op in AttentionOpType)}"
                ) from None
        setattr(fusion, key, value)
    return fusion


def _first(hf_config: dict[str, Any], *keys: str) -> int:
    return next((hf_config[key] for key in keys if isinstance(hf_config.get(key), int)), 0)
