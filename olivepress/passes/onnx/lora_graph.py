"""Graph edits for LoRA under the naming contract of models.onnx_adapters: adding the LoRA branches
to a built graph, and turning LoRA weights into overridable inputs."""

from typing import TYPE_CHECKING

from olivepress.errors import OlivepressError
from olivepress.models.onnx_adapters import LoraTarget, lora_weight_target, target_of_weight

if TYPE_CHECKING:
    import numpy as np


def add_lora_branches(proto, weights: dict[str, "np.ndarray"]) -> None:
    """Add the builder's LoRA branch (A and B MatMuls, an Add) after each target projection, with
    `weights` as initializers: the graph the builder would have written with the adapter option."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    targets = sorted({lora_weight_target(name)[0] for name in weights})
    producers = {output: node for node in graph.node for output in node.output}
    outputs = {}
    for target in targets:
        found = [name for name in target.projection_outputs if name in producers]
        if not found:
            raise OlivepressError(f"the built graph has no {target.projection_outputs[0]} to attach LoRA to")
        outputs[target] = found[0]
    sums = {outputs[target]: f"{target.add_node}/output_0" for target in targets}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in sums:
                node.input[index] = sums[name]
    branches = {outputs[target]: _branch(helper, target, producers[outputs[target]].input[0], outputs[target])
                for target in targets}
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for output in node.output:
            nodes.extend(branches.get(output, ()))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in weights.items())


def _branch(helper, target: LoraTarget, root: str, projection_output: str) -> list:
    a_out, b_out = f"{target.lora_node('A')}/output_0", f"{target.lora_node('B')}/output_0"
    return [
        helper.make_node("MatMul", [root, target.weight_name("A")], [a_out], name=target.lora_node("A")),
        helper.make_node("MatMul", [a_out, target.weight_name("B")], [b_out], name=target.lora_node("B")),
        helper.make_node("Add", [projection_output, b_out], [f"{target.add_node}/output_0"], name=target.add_node),
    ]


def extract_lora_inputs(proto, dynamic_rank: bool = True, optional: bool = True) -> dict[str, "np.ndarray"]:
    """Move every LoRA weight initializer out of the graph; returns them {name: array}.

    Each becomes a graph input ([in, rank] or [rank, out], the rank symbolic when `dynamic_rank`).
    With `optional`, an empty initializer of the same name ([in, 0] or [0, out]) stays as its
    default: a run that feeds no adapter adds exactly zero, which is the base model.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = proto.graph
    found = [(initializer, target_of_weight(initializer.name)) for initializer in graph.initializer]
    lora = [(initializer, match) for initializer, match in found if match is not None]
    if not lora:
        raise OlivepressError("the model has no LoRA weights to extract (names like "
                              f"{LoraTarget(0, 'attn', 'q_proj').weight_name('A')}); export it with an adapter")
    weights = {}
    for initializer, (target, which) in lora:
        array = numpy_helper.to_array(initializer)
        weights[initializer.name] = array
        rank = target.rank_dim if dynamic_rank else array.shape[0 if which == "B" else 1]
        shape = [array.shape[0], rank] if which == "A" else [rank, array.shape[1]]
        graph.input.append(helper.make_tensor_value_info(initializer.name, initializer.data_type, shape))
    kept = [initializer for initializer in graph.initializer if initializer.name not in weights]
    if optional:
        for name, array in weights.items():
            empty_shape = (array.shape[0], 0) if lora_weight_target(name)[1] == "A" else (0, array.shape[1])
            kept.append(numpy_helper.from_array(np.zeros(empty_shape, dtype=array.dtype), name))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return weights
