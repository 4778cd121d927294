"""ComposeOnnxModels: a composite model's parts joined into one ONNX graph, as Olive's ComposeOnnxModels joins them.

Values connect by name: an input of a part that an earlier part outputs is wired to that output. The composed graph's
inputs are the parts' inputs that no earlier part makes; its outputs are the parts' outputs that no part reads.
Initializers and nodes that several parts hold alike (SplitModel copies constants and DequantizeLinear nodes into each
part that reads them) are kept once. Olive also composes a StaticLLM model's context parts into one graph and its
iterator parts into another (after compiling them for QNN); that is refused here.
"""

from pathlib import Path
from typing import Any

from olivepress.errors import OlivepressError
from olivepress.models.handles import CompositeModel, OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, graph_files, load_onnx, save_onnx


class ComposeOnnxModelsConfig(ExternalDataOptions):
    pass


class ComposeOnnxModels(Pass[CompositeModel, ComposeOnnxModelsConfig]):
    name = "ComposeOnnxModels"
    description = "Joins a composite model's parts (SplitModel's) into one ONNX model by their value names."
    Config = ComposeOnnxModelsConfig
    accepts = ("composite",)
    produces = "onnx"
    version = "1"

    def run(self, model: CompositeModel, config: ComposeOnnxModelsConfig, context: PassContext) -> OnnxModel:
        if model.llm_pipeline is not None:
            raise OlivepressError(
                "ComposeOnnxModels: composing a StaticLLM model's context and iterator groups (Olive's QNN recipes, "
                "after EPContextBinaryGenerator) is not implemented; compose SplitModel's parts before StaticLLM")
        composed = compose([load_onnx(model.component(name)) for name in model.components])
        save_onnx(composed, context.output_dir, options=config)
        copy_composite_side_files(model, context.output_dir)
        context.metrics["parts"] = len(model.components)
        context.metrics["nodes"] = len(composed.graph.node)
        return OnnxModel(path=context.output_dir)


def compose(parts: list[Any]):
    """One ModelProto that runs `parts` in order, values connected by name."""
    from onnx import helper

    _check_names(parts)
    made: dict[str, Any] = {}  # value name -> the value info of the part output that makes it
    inputs: dict[str, Any] = {}
    initializers: dict[str, Any] = {}
    nodes: dict[str, Any] = {}  # by name; unnamed nodes under a key of their own
    produced: set[str] = set()
    value_info: dict[str, Any] = {}
    read = {value.name for part in parts for value in part.graph.input}
    for index, part in enumerate(parts):
        graph = part.graph
        for value in graph.input:
            if value.name not in made and value.name not in inputs:
                inputs[value.name] = value
        for tensor in graph.initializer:
            kept = initializers.setdefault(tensor.name, tensor)
            if kept is not tensor and kept.SerializeToString() != tensor.SerializeToString():
                raise OlivepressError(f"ComposeOnnxModels: part {index} holds an initializer '{tensor.name}' unlike "
                                      "an earlier part's of that name")
        for position, node in enumerate(graph.node):
            key = node.name or f"\0{index}:{position}"
            if key in nodes:
                if nodes[key].SerializeToString() != node.SerializeToString():
                    raise OlivepressError(f"ComposeOnnxModels: part {index} has a node '{node.name}' unlike an "
                                          "earlier part's of that name")
                continue
            clash = produced.intersection(filter(None, node.output))
            if clash:
                raise OlivepressError(f"ComposeOnnxModels: part {index} makes '{sorted(clash)[0]}', which an earlier "
                                      "part makes too")
            nodes[key] = node
            produced.update(filter(None, node.output))
        for value in [*graph.value_info]:
            value_info.setdefault(value.name, value)
        for value in graph.output:
            made.setdefault(value.name, value)
    outputs = [value for name, value in made.items() if name not in read]
    connections = [value for name, value in made.items() if name in read]
    composed = helper.make_graph(list(nodes.values()), parts[0].graph.name, list(inputs.values()), outputs,
                                 initializer=list(initializers.values()),
                                 value_info=[*value_info.values(), *connections])
    model = helper.make_model(composed, opset_imports=_opsets(parts), producer_name="olivepress",
                              functions=_functions(parts))
    model.ir_version = max(part.ir_version for part in parts)
    return model


def _check_names(parts: list[Any]) -> None:
    """Olive's two rules: no part outputs a name an earlier part reads (a loop), nor one an earlier part outputs."""
    seen_inputs: set[str] = set()
    seen_outputs: set[str] = set()
    for index, part in enumerate(parts):
        outputs = {value.name for value in part.graph.output}
        if loop := outputs & seen_inputs:
            raise OlivepressError(f"ComposeOnnxModels: part {index} outputs '{sorted(loop)[0]}', which an earlier part "
                                  "reads: the parts must run in order")
        if again := outputs & seen_outputs:
            raise OlivepressError(f"ComposeOnnxModels: part {index} outputs '{sorted(again)[0]}', which an earlier "
                                  "part outputs too")
        seen_inputs |= {value.name for value in part.graph.input}
        seen_outputs |= outputs


def _opsets(parts: list[Any]) -> list[Any]:
    from onnx import helper

    versions: dict[str, int] = {}
    for part in parts:
        for opset in part.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]


def _functions(parts: list[Any]) -> list[Any]:
    functions: dict[tuple[str, str], Any] = {}
    for part in parts:
        for function in part.functions:
            functions.setdefault((function.domain, function.name), function)
    return list(functions.values())


def copy_composite_side_files(model: CompositeModel, output_dir: Path) -> None:
    """Copy what the composite's folder holds besides its parts' graphs and weights (genai_config.json, tokenizer,
    config.json)."""
    import shutil

    part_files: set[str] = set()
    for name in model.components:
        part = model.component(name)
        part_files |= graph_files(load_onnx(part, with_weights=False), part.onnx_file_name)
    for file in sorted(model.path.iterdir()):
        if file.name in part_files:
            continue
        (shutil.copytree if file.is_dir() else shutil.copy2)(file, output_dir / file.name)
