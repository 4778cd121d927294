"""StaticLLM: a split GenAI LLM (embeddings, decoder-layer parts, LM head) made static-shaped for NPUs, as Olive's
StaticLLM makes it.

Each decoder-layer part becomes two graphs over one weight file: a context graph that takes `context_length` tokens
(the prompt, in windows) and an iterator graph that takes one (each generated token), both of batch `batch_size`. The
embeddings and LM head keep their shapes. genai_config.json, when the folder has one, becomes a `decoder-pipeline`
naming the parts, with a sliding window of `context_length` tokens.
"""

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from olivepress.errors import OlivepressError
from olivepress.models.handles import CompositeModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.onnx.compose import copy_composite_side_files
from olivepress.passes.onnx.model_files import load_onnx, save_onnx

GROUPS = ("context", "iterator")
GENAI_CONFIG = "genai_config.json"


class StaticLLMConfig(PassConfig):
    batch_size: int = Field(1, ge=1, description="Batch size of the context and iterator graphs.")
    context_length: int = Field(64, ge=1, description="Tokens the context graph takes at once (the prompt window).")
    prefill_decode_models: bool = Field(
        True, description="QNN GPU only (Olive's prefill and decode models of one graph); refused with that target.")
    group_session_options: dict[str, Any] | None = Field(
        None, description="Session options of the context and iterator graphs in genai_config.json's pipeline "
        "(e.g. {provider_options: [{VitisAI: {}}]}); default none (the decoder's).")
    update_genai_config: bool = Field(
        False, description="QNN GPU only; genai_config.json of a split model is always updated.")


class StaticLLM(Pass[CompositeModel, StaticLLMConfig]):
    name = "StaticLLM"
    description = ("Makes a split GroupQueryAttention LLM static-shaped for NPUs: a context graph (context_length "
                   "tokens) and an iterator graph (one token) per decoder part, genai_config.json a decoder-pipeline.")
    Config = StaticLLMConfig
    accepts = ("composite",)
    produces = "composite"
    version = "1"

    def run(self, model: CompositeModel, config: StaticLLMConfig, context: PassContext) -> CompositeModel:
        accelerator = context.accelerator
        if accelerator.execution_provider == "QNNExecutionProvider" and accelerator.device == "gpu":
            raise OlivepressError("StaticLLM for QNN GPU (prefill/decode graphs of one model) needs the QNN SDK's GPU "
                                  "backend, which the olivepress-qnn plugin would provide")
        names = list(model.components)
        if len(names) < 3:
            raise OlivepressError(f"StaticLLM takes a model split into embeddings, decoder layers and LM head (at least "
                                  f"3 parts; CaptureSplitInfo's unique_embeds_lm_head_splits), not {len(names)} parts")
        embeddings, layers, lm_head = names[0], names[1:-1], names[-1]
        if not any(node.op_type == "GroupQueryAttention" for node in load_onnx(model.component(layers[0]), False).graph.node):
            raise OlivepressError(f"StaticLLM: part '{layers[0]}' has no GroupQueryAttention; only GQA models (the "
                                  "GenAI builder's) are supported, as in Olive")
        mappings = _dim_mappings(load_onnx(model.component(embeddings), False), config)
        out = context.output_dir
        save_onnx(load_onnx(model.component(embeddings)), out, "embeddings.onnx")
        save_onnx(load_onnx(model.component(lm_head)), out, "lm_head.onnx")
        groups: dict[str, list[str]] = {group: [] for group in GROUPS}
        for index, name in enumerate(layers):
            suffix = f"_{index}" if len(layers) > 1 else ""
            shared = save_onnx(load_onnx(model.component(name)), out, f"transformer{suffix}.onnx")
            for group in GROUPS:
                proto = _load_graph_only(shared)
                fix_shape(proto, mappings[group])
                _save_graph_only(proto, out / f"{group}{suffix}.onnx")
                groups[group].append(f"{group}{suffix}")
            shared.unlink()  # its weight file stays: both graphs read it
        copy_composite_side_files(model, out)
        pipeline = {"embeddings": "embeddings", **groups, "lm_head": "lm_head"}
        components = {name: f"{name}.onnx" for name in ["embeddings", *groups["context"], *groups["iterator"], "lm_head"]}
        result = CompositeModel(path=out, components=components, llm_pipeline=pipeline)
        if (out / GENAI_CONFIG).is_file():
            update_genai_config(result, config)
        return result


def _dim_mappings(embeddings, config: StaticLLMConfig) -> dict[str, dict[str, int]]:
    """{group: {symbolic dim: value}}: batch and sequence of input_ids, and what they make of the embeddings' output
    dims."""
    ids = next((value for value in embeddings.graph.input if value.name == "input_ids"), None)
    if ids is None:
        raise OlivepressError("StaticLLM: the embeddings part has no input_ids input")
    dims = [dim.dim_param for dim in ids.type.tensor_type.shape.dim]
    if len(dims) != 2 or not all(dims):
        raise OlivepressError("StaticLLM: the embeddings' input_ids must have a symbolic batch and sequence dimension")
    mappings = {"context": {dims[0]: config.batch_size, dims[1]: config.context_length},
                "iterator": {dims[0]: config.batch_size, dims[1]: 1}}
    for mapping in mappings.values():
        proto = type(embeddings)()
        proto.CopyFrom(embeddings)
        fix_shape(proto, mapping)
    return mappings


def fix_shape(proto, mapping: dict[str, int]) -> None:
    """Fix the symbolic dims of `mapping` in the graph, infer the outputs' shapes, and add to `mapping` the output dims
    that became fixed (their names carry on into the next part's inputs)."""
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    before = {value.name: _dims(value) for value in proto.graph.output}
    for param, value in list(mapping.items()):
        make_dim_param_fixed(proto.graph, param, value)
    _fix_output_shapes(proto)
    for output in proto.graph.output:
        for old, new in zip(before[output.name], _dims(output), strict=True):
            if isinstance(old, str) and isinstance(new, int):
                if mapping.get(old, new) != new:
                    raise OlivepressError(f"StaticLLM: dimension {old} is {mapping[old]} in one part and {new} in "
                                          f"another ({output.name})")
                mapping[old] = new


def _fix_output_shapes(proto) -> None:
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True, guess_output_rank=True)
    for output, new in zip(proto.graph.output, inferred.graph.output, strict=True):
        if not is_fixed_size_tensor(output) and is_fixed_size_tensor(new):
            output.type.tensor_type.shape.CopyFrom(new.type.tensor_type.shape)


def _dims(value) -> list[int | str]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def _load_graph_only(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _save_graph_only(proto, path: Path) -> None:
    """Save a graph whose weights stay in the external file it names (beside `path`)."""
    import onnx

    onnx.save_model(proto, str(path))


def update_genai_config(model: CompositeModel, config: StaticLLMConfig) -> None:
    """genai_config.json as a decoder-pipeline of the model's parts (Olive's update_llm_pipeline_genai_config)."""
    assert model.llm_pipeline is not None  # StaticLLM sets it
    path = model.path / GENAI_CONFIG
    genai = json.loads(path.read_text(encoding="utf-8"))
    genai["model"]["type"] = "decoder-pipeline"
    decoder = genai["model"]["decoder"]
    decoder.pop("filename", None)
    decoder.get("sliding_window", {}).pop("slide_inputs", None)
    pipeline = model.llm_pipeline
    first_layer = load_onnx(model.component(pipeline["context"][0]), False)
    if {"past_seq_len", "total_seq_len"} <= {value.name for value in first_layer.graph.input}:
        # AttentionMaskToSequenceLengths' inputs stand where GenAI would pass the attention mask
        decoder.setdefault("inputs", {}).update(past_sequence_length="past_seq_len", total_sequence_length="total_seq_len")
    decoder["sliding_window"] = {**decoder.get("sliding_window", {}), "window_size": config.context_length,
                                 "pad_value": 0, "alignment": "left", "slide_key_value_cache": False}
    session_options = config.group_session_options
    stages: dict[str, dict[str, Any]] = {}
    for name in [pipeline["embeddings"], *pipeline["context"], *pipeline["iterator"], pipeline["lm_head"]]:
        graph = load_onnx(model.component(name), False).graph
        stages[name] = {"filename": model.components[name], "inputs": [value.name for value in graph.input],
                        "outputs": [value.name for value in graph.output]}
    for group, skipped in (("context", "run_on_token_gen"), ("iterator", "run_on_prompt")):
        for name in pipeline[group]:
            stages[name] |= ({"session_options": session_options} if session_options else {}) | {skipped: False}
    stages[pipeline["lm_head"]]["is_lm_head"] = True
    decoder["pipeline"] = [stages]
    path.write_text(json.dumps(genai, indent=4) + "\n", encoding="utf-8")
