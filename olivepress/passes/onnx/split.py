"""SplitModel: an ONNX model cut into parts by module, as Olive's SplitModel cuts it.

Each node goes to the part of the module its name lies in (`/model/layers.3/attn/...` -> `model.layers.3`). A node of
no listed module goes to the latest part among its inputs' producers (the final norm, the LM head); one before every
part (the embedding, the attention-mask and rotary subgraphs) to the earliest part that reads it. Quantize nodes stay
with their producer; DequantizeLinear and Constant nodes are copied into every part that reads them. A value made in
one part and read in a later one becomes an output of the first and an input of the other, under its own name, so
the parts run one after another by passing values by name.
"""

from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field

from olivepress.errors import OlivepressError
from olivepress.models.handles import CompositeModel, OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files, load_onnx, save_onnx
from olivepress.passes.pytorch.capture_split_info import SPLIT_ASSIGNMENTS_KEY, read_split_assignments

COPIED_OPS = ("Constant", "DequantizeLinear")  # copied into each part that reads them


class SplitModelConfig(ExternalDataOptions):
    split_assignments: dict[str, int] | str | None = Field(
        None, description="{module: part} or Olive's 'name1=0;name2=1' string; overrides the assignment the model "
        "carries (CaptureSplitInfo's, in the graph's metadata or the config.json beside it).")


class SplitModel(Pass[OnnxModel, SplitModelConfig]):
    name = "SplitModel"
    description = ("Cuts an ONNX model into parts by CaptureSplitInfo's split_assignments (split_0.onnx, ...); "
                   "the parts, run one after another, compute what the model does.")
    Config = SplitModelConfig
    accepts = ("onnx",)
    produces = "composite"
    version = "1"

    def run(self, model: OnnxModel, config: SplitModelConfig, context: PassContext) -> CompositeModel:
        proto = load_onnx(model)
        assignments = _assignments(config.split_assignments, proto, model.path)
        parts = split_graph(proto, assignments)
        components = {}
        for index, part in parts.items():
            name = f"split_{index}"
            save_onnx(part, context.output_dir, f"{name}.onnx", options=config)
            components[name] = f"{name}.onnx"
        copy_side_files(model, context.output_dir)
        context.metrics["parts"] = len(components)
        return CompositeModel(path=context.output_dir, components=components)


def _assignments(given: dict[str, int] | str | None, proto, folder: Path) -> dict[str, int]:
    """The parameter's assignment, else the graph's metadata entry (Olive's), else config.json's (CaptureSplitInfo's,
    copied beside the graph by the export)."""
    if given is None:
        given = next((entry.value for entry in proto.metadata_props if entry.key == SPLIT_ASSIGNMENTS_KEY), None)
    if given is None:
        given = read_split_assignments(folder)
    if not given:
        raise OlivepressError(f"SplitModel: {folder} carries no split_assignments; run CaptureSplitInfo before the "
                              "export, or set split_assignments")
    if isinstance(given, str):
        try:
            return {name: int(part) for name, part in (item.split("=") for item in given.split(";"))}
        except ValueError:
            raise OlivepressError(f"split_assignments: {given!r} is not of the form 'name1=0;name2=1'") from None
    return given


def split_graph(proto, assignments: dict[str, int]) -> dict[int, Any]:
    """{part index: ModelProto} of the parts that got nodes, in order."""
    graph = proto.graph
    nodes = list(graph.node)
    reads = [_node_inputs(node) for node in nodes]
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, names in enumerate(reads):
        for name in names:
            consumers[name].append(index)
    parts = _assign(nodes, reads, producer, consumers, assignments)
    if not any(parts):
        raise OlivepressError(f"split_assignments: no node of the graph lies in any of {sorted(assignments)}")
    return _build(proto, nodes, reads, consumers, parts)


def _assign(nodes, reads, producer, consumers, assignments: dict[str, int]) -> list[list[int]]:
    """Each node's parts (a list: copied nodes may be in several; empty for a node no part needs)."""
    assigned: dict[int, int] = {}
    for index, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        own = None if node.op_type in ("QuantizeLinear", "DequantizeLinear") else _module_part(node.name, assignments)
        parents = [assigned[producer[name]] for name in reads[index] if producer.get(name) in assigned]
        if own is not None or parents:
            assigned[index] = max([*([own] if own is not None else []), *parents])
    for index in reversed(range(len(nodes))):
        if index in assigned or nodes[index].op_type == "Constant":
            continue
        children = [assigned[child] for name in nodes[index].output for child in consumers.get(name, [])
                    if child in assigned]
        assigned[index] = min(children) if children else 0
    parts = [[assigned[index]] if index in assigned else [] for index in range(len(nodes))]
    copied = [index for index, node in enumerate(nodes) if node.op_type == "DequantizeLinear"]
    copied += [index for index, node in enumerate(nodes) if node.op_type == "Constant"]
    for index in copied:
        readers = {part for name in nodes[index].output for child in consumers.get(name, []) for part in parts[child]}
        if readers:
            parts[index] = sorted(readers)
    return parts


def _module_part(node_name: str, assignments: dict[str, int]) -> int | None:
    """The part of the longest assigned module that the node's name lies in."""
    components = node_name.replace("/", ".").lstrip(".").split(".")
    while components:
        if (part := assignments.get(".".join(components))) is not None:
            return part
        components.pop()
    return None


def _build(proto, nodes, reads, consumers, parts: list[list[int]]) -> dict[int, Any]:
    from onnx import helper

    graph = proto.graph
    inputs = {value.name: value for value in graph.input}
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    known_info = {value.name: value for value in [*graph.value_info, *graph.output]}
    indices = sorted({part for node_parts in parts for part in node_parts})
    built: dict[int, dict[str, Any]] = {part: {"nodes": [], "inputs": [], "initializers": [], "outputs": [],
                                               "value_info": [], "names": set()} for part in indices}
    crossing: dict[str, list[int]] = defaultdict(list)  # values read across parts, with no value info yet
    for index, node in enumerate(nodes):
        for part in parts[index]:
            into = built[part]
            for name in reads[index]:
                if name in into["names"]:
                    continue
                into["names"].add(name)
                if name in inputs:
                    into["inputs"].append(inputs[name])
                if name in initializers:
                    into["initializers"].append(initializers[name])
                if name not in inputs and name not in initializers:
                    if name in known_info:
                        into["inputs"].append(known_info[name])
                    else:
                        crossing[name].append(part)
                        into["inputs"].append(name)
            into["nodes"].append(node)
            for name in filter(None, node.output):
                into["names"].add(name)
                leaves = name in outputs or any(set(parts[child]) - set(parts[index]) for child in consumers.get(name, []))
                if leaves:
                    into["outputs"].append(known_info.get(name, name))
                    if name not in known_info:
                        crossing[name].append(part)
                elif name in known_info:
                    into["value_info"].append(known_info[name])
    inferred = _inferred_info(proto, set(crossing)) if crossing else {}
    models = {}
    for part, into in built.items():
        part_graph = helper.make_graph(
            into["nodes"], f"{graph.name}_split_{part}",
            [_value_info(value, inferred) for value in into["inputs"]],
            [_value_info(value, inferred) for value in into["outputs"]],
            initializer=into["initializers"], value_info=into["value_info"])
        model = helper.make_model(part_graph, opset_imports=proto.opset_import, producer_name="olivepress",
                                  functions=proto.functions)
        model.ir_version = proto.ir_version
        models[part] = model
    return models


def _value_info(value, inferred: dict[str, Any]):
    if not isinstance(value, str):
        return value
    if value not in inferred:
        raise OlivepressError(f"SplitModel: the type of '{value}', which passes between parts, cannot be inferred")
    return inferred[value]


def _inferred_info(proto, names: set[str]) -> dict[str, Any]:
    """Value info of `names` from ONNX Runtime's symbolic shape inference (it knows the contrib ops), falling back to
    ONNX's own."""
    import onnx

    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
    except Exception:  # the tool gives up on some graphs by raising anything; ONNX's inference is the fallback
        inferred = onnx.shape_inference.infer_shapes(proto)
    infos = {value.name: value for value in [*inferred.graph.value_info, *inferred.graph.output]}
    return {name: infos[name] for name in names if name in infos}


def _node_inputs(node) -> list[str]:
    """The values a node reads: its inputs and the outer values its subgraphs (If, Loop, Scan) read."""
    names = [name for name in node.input if name]
    for attribute in node.attribute:
        for subgraph in [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]:
            names += [name for name in _outer_reads(subgraph) if name not in names]
    return names


def _outer_reads(graph) -> list[str]:
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    read: list[str] = []
    for node in graph.node:
        for name in _node_inputs(node):
            if name not in defined and name not in read:
                read.append(name)
        defined.update(node.output)
    return read
