"""Olive's graph surgeons: named rewrites of an ONNX graph, each with its parameters as a typed model.

Each surgeon edits the main graph of a ModelProto in place and returns how many places it changed; a surgeon that
finds nothing to change returns 0 and leaves the graph as it was (as in Olive).
"""

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from olivepress.config.base import ConfigModel


class GraphIndex:
    """Who produces and who consumes each value of a graph, and the constant arrays it holds."""

    def __init__(self, graph):
        self.graph = graph
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.producer = {name: node for node in graph.node for name in node.output if name}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.inputs = {value.name for value in graph.input}
        self.outputs = {value.name for value in graph.output}

    def array(self, name: str) -> np.ndarray | None:
        """The value of an initializer or of a Constant node's output; None for anything computed."""
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def replace_nodes(self, old: list, new: list) -> None:
        """Remove `old` and put `new` where the first of them was (keeping the graph's topological order)."""
        # Nodes are told apart by their outputs: the repeated field copies messages, so identities do not last.
        removed = {tuple(node.output) for node in old}
        nodes = []
        for node in self.graph.node:
            if tuple(node.output) == tuple(old[0].output):
                nodes.extend(new)
            if tuple(node.output) not in removed:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def drop_unused_initializers(self) -> None:
        used = {name for node in self.graph.node for name in node.input} | self.outputs
        kept = [tensor for tensor in self.graph.initializer if tensor.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)

    def add_initializer(self, array: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name


class Surgeon(ConfigModel, ABC):
    """A surgeon's parameters; `apply` does the rewrite."""

    surgeon: str
    description: ClassVar[str]

    @abstractmethod
    def apply(self, model) -> int:
        """Rewrite `model` (a ModelProto) in place; returns the number of places changed."""


def _node(op_type: str, inputs: list[str], name: str, domain: str = "", **attributes):
    from onnx import helper

    return helper.make_node(op_type, inputs, [f"{name}_output_0"], name=name, domain=domain, **attributes)


def _reshape_back_nodes(index: GraphIndex, source: str, flat: str, last_dim: int, name: str) -> list:
    """Nodes reshaping `flat` ([n, last_dim]) to `source`'s shape with its last axis set to `last_dim`."""
    shape = _node("Shape", [source], f"{name}/Shape")
    starts = index.add_initializer(np.array([0], dtype=np.int64), f"{name}/starts")
    ends = index.add_initializer(np.array([-1], dtype=np.int64), f"{name}/ends")
    leading = _node("Slice", [shape.output[0], starts, ends], f"{name}/Slice")
    last = index.add_initializer(np.array([last_dim], dtype=np.int64), f"{name}/last_dim")
    target = _node("Concat", [leading.output[0], last], f"{name}/Concat", axis=0)
    return [shape, leading, target, _node("Reshape", [flat, target.output[0]], f"{name}/Reshape_post")]


def _flatten_node(index: GraphIndex, source: str, last_dim: int, name: str):
    flat_shape = index.add_initializer(np.array([-1, last_dim], dtype=np.int64), f"{name}/flat_shape")
    return _node("Reshape", [source, flat_shape], f"{name}/Reshape_pre")


class TieWordEmbeddings(Surgeon):
    description = ("Let the LM head read the embedding's weight (float Gather + MatMul, or GatherBlockQuantized + "
                   "MatMulNBits with equal quantized data), so the model stores it once.")
    surgeon: Literal["TieWordEmbeddings"]

    def apply(self, model) -> int:
        index = GraphIndex(model.graph)
        ids = next((name for name in ("input_ids", "input_embeds", "inputs_embeds") if name in index.inputs), None)
        if ids is None or "logits" not in index.outputs or "logits" not in index.producer:
            return 0
        embed = next((node for node in index.consumers[ids] if node.op_type in ("Gather", "GatherBlockQuantized")
                      and node.input[0] in index.initializers), None)
        head = index.producer["logits"]
        if embed is None or head.op_type not in ("MatMul", "MatMulNBits") or head.input[1] not in index.initializers:
            return 0
        if (embed.op_type, head.op_type) == ("Gather", "MatMul"):
            return self._tie_float(index, embed, head)
        if (embed.op_type, head.op_type) == ("GatherBlockQuantized", "MatMulNBits"):
            return self._tie_quantized(index, embed, head)
        return 0  # one of them quantized and the other not: nothing to share

    @staticmethod
    def _tie_float(index: GraphIndex, embed, head) -> int:
        weight = index.array(embed.input[0])
        head_weight = index.array(head.input[1])
        if weight is None or head_weight is None or not np.array_equal(weight.T, head_weight):
            return 0
        vocab, hidden = weight.shape
        name = head.name or "lm_head"
        flat = _flatten_node(index, head.input[0], hidden, name)
        gemm = _node("Gemm", [flat.output[0], embed.input[0]], f"{name}/Gemm_tied", transB=1)
        back = _reshape_back_nodes(index, head.input[0], gemm.output[0], vocab, name)
        back[-1].output[0] = head.output[0]
        index.replace_nodes([head], [flat, gemm, *back])
        index.drop_unused_initializers()
        return 1

    @staticmethod
    def _tie_quantized(index: GraphIndex, embed, head) -> int:
        # GatherBlockQuantized(data, indices, scales[, zero_points]); MatMulNBits(A, B, scales[, zero_points, ...])
        embed_parts = [embed.input[0], *embed.input[2:4]]
        head_parts = list(head.input[1:1 + len(embed_parts)])
        arrays = [(index.array(a), index.array(b)) for a, b in zip(embed_parts, head_parts, strict=False)]
        if len(head_parts) != len(embed_parts) or any(
            a is None or b is None or a.size != b.size or not np.array_equal(a.ravel(), b.ravel()) for a, b in arrays
        ):
            return 0
        name = head.name or "lm_head"
        head_shape = np.array(index.initializers[head.input[1]].dims, dtype=np.int64)
        shape = index.add_initializer(head_shape, f"{name}/tied_shape")
        reshape = _node("Reshape", [embed.input[0], shape], f"{name}/Reshape_tied")
        head.input[1] = reshape.output[0]
        for position, part in enumerate(embed_parts[1:], start=2):
            head.input[position] = part  # MatMulNBits reads [N, blocks] scales and zero points as well as flat ones
        index.replace_nodes([head], [reshape, head])
        index.drop_unused_initializers()
        return 1


class MatMulAddToGemm(Surgeon):
    description = ("MatMul with a 2-D constant weight followed by Add of a 1-D bias becomes one Gemm (inputs of "
                   "higher rank with static shapes are flattened around it).")
    surgeon: Literal["MatMulAddToGemm"]

    def apply(self, model) -> int:
        import onnx

        shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
        index = GraphIndex(model.graph)
        changed = 0
        for matmul in list(model.graph.node):
            if matmul.op_type != "MatMul" or len(index.consumers[matmul.output[0]]) != 1:
                continue
            add = index.consumers[matmul.output[0]][0]
            weight = index.array(matmul.input[1])
            bias_name = next((name for name in add.input if name != matmul.output[0]), "")
            bias = index.array(bias_name) if bias_name else None
            if add.op_type != "Add" or weight is None or weight.ndim != 2 or bias is None or bias.ndim != 1 \
                    or add.output[0] in index.outputs:
                continue
            nodes = self._gemm_nodes(index, matmul, bias_name, weight, shapes.get(matmul.input[0]))
            if nodes is None:
                continue
            nodes[-1].output[0] = add.output[0]
            index.replace_nodes([matmul, add], nodes)
            changed += 1
        return changed

    @staticmethod
    def _gemm_nodes(index: GraphIndex, matmul, bias: str, weight: np.ndarray, a_shape: list | None) -> list | None:
        name = (matmul.name or matmul.output[0]).replace("MatMul", "Gemm")
        if a_shape is None:
            return None
        if len(a_shape) == 2:
            return [_node("Gemm", [matmul.input[0], matmul.input[1], bias], name)]
        if any(not isinstance(dim, int) for dim in a_shape):
            return None  # as in Olive: flattening needs static shapes
        flat_shape = index.add_initializer(np.array([math.prod(a_shape[:-1]), a_shape[-1]], dtype=np.int64),
                                           f"{name}/flat_shape")
        out_shape = index.add_initializer(np.array([*a_shape[:-1], weight.shape[1]], dtype=np.int64), f"{name}/out_shape")
        flat = _node("Reshape", [matmul.input[0], flat_shape], f"{name}/Reshape_pre")
        gemm = _node("Gemm", [flat.output[0], matmul.input[1], bias], name)
        return [flat, gemm, _node("Reshape", [gemm.output[0], out_shape], f"{name}/Reshape_post")]


def _static_shapes(inferred) -> dict[str, list]:
    """{value name: dims (int, or the symbolic name)} of every value with a known shape."""
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param
                                  for dim in tensor_type.shape.dim]
    return shapes


class ReplaceAttentionMaskValue(Surgeon):
    description = ("Float constants below `threshold` feeding Add/Mul/Expand/Where/Shape (the attention mask's "
                   "'minus infinity') become `replacement`, a value that quantizes well.")
    surgeon: Literal["ReplaceAttentionMaskValue"]
    threshold: float = Field(-3e30, description="Values below this are replaced.")
    replacement: float = Field(-1e4, description="The value they get.")

    ALLOWED_CONSUMERS: ClassVar[set[str]] = {"Add", "Mul", "Expand", "Where", "Shape"}

    def apply(self, model) -> int:
        from onnx import TensorProto, numpy_helper

        index = GraphIndex(model.graph)
        changed = 0
        tensors = [(node.output[0], node.attribute[0].t) for node in model.graph.node
                   if node.op_type in ("Constant", "ConstantOfShape") and node.attribute
                   and node.attribute[0].name == "value"]
        tensors += [(tensor.name, tensor) for tensor in model.graph.initializer]
        for name, tensor in tensors:
            consumers = index.consumers[name]
            if tensor.data_type != TensorProto.FLOAT or not consumers or \
                    any(node.op_type not in self.ALLOWED_CONSUMERS for node in consumers):
                continue
            values = numpy_helper.to_array(tensor)
            if np.any(values < self.threshold):
                replaced = np.where(values < self.threshold, np.float32(self.replacement), values).astype(np.float32)
                tensor.CopyFrom(numpy_helper.from_array(replaced, tensor.name))
                changed += 1
        return changed


class SimplifiedLayerNormToL2Norm(Surgeon):
    description = ("(Skip)SimplifiedLayerNormalization (RMSNorm) becomes LpNormalization(p=2) times the weight "
                   "scaled by sqrt(hidden size), for NPUs without RMSNorm.")
    surgeon: Literal["SimplifiedLayerNormToL2Norm"]

    def apply(self, model) -> int:
        index = GraphIndex(model.graph)
        scaled: set[str] = set()
        changed = 0
        for node in list(model.graph.node):
            skip = node.op_type == "SkipSimplifiedLayerNormalization"
            if node.op_type != "SimplifiedLayerNormalization" and not skip:
                continue
            weight_name = node.input[2 if skip else 1] if len(node.input) > (2 if skip else 1) else ""
            statistics = [name for name in node.output[1:3] if name]  # mean, inv_std_var: no L2 equivalent
            if len(node.input) != 2 + skip or statistics or index.array(weight_name) is None:
                continue
            nodes = []
            root = node.input[0]
            if skip:
                nodes.append(_node("Add", [node.input[0], node.input[1]], f"{node.name}/Add"))
                root = nodes[0].output[0]
                if len(node.output) > 3 and node.output[3]:  # input_skip_bias_sum, read further on
                    nodes[0].output[0] = root = node.output[3]
            if weight_name not in scaled:
                self._scale_weight(index, weight_name)
                scaled.add(weight_name)
            norm = _node("LpNormalization", [root], f"{node.name}/L2Norm", axis=-1, p=2)
            mul = _node("Mul", [norm.output[0], weight_name], f"{node.name}/Mul")
            mul.output[0] = node.output[0]
            index.replace_nodes([node], [*nodes, norm, mul])
            changed += 1
        return changed

    @staticmethod
    def _scale_weight(index: GraphIndex, name: str) -> None:
        from onnx import numpy_helper

        weight = index.array(name)
        assert weight is not None  # checked by the caller
        scaled = (np.sqrt(weight.shape[-1]) * (np.ones(1) if np.all(weight == 1) else weight)).astype(weight.dtype)
        index.initializers[name].CopyFrom(numpy_helper.from_array(scaled, name))


class PowReduceSumPowDiv2LpNorm(Surgeon):
    description = "x / (ReduceSum(x ** 2) ** 0.5) becomes LpNormalization(x, p=2, axis=-1)."
    surgeon: Literal["PowReduceSumPowDiv2LpNorm"]

    def apply(self, model) -> int:
        index = GraphIndex(model.graph)
        changed = 0
        for div in list(model.graph.node):
            if div.op_type != "Div" or len(div.input) < 2:
                continue
            root = self._lp_root(index, div)
            if root is None:
                continue
            pow_half = index.producer[div.input[1]]
            reduce_sum = index.producer[pow_half.input[0]]
            square = index.producer[reduce_sum.input[0]]
            norm = _node("LpNormalization", [root], f"{div.name or div.output[0]}_lp_norm", axis=-1, p=2)
            norm.output[0] = div.output[0]
            index.replace_nodes([square, reduce_sum, pow_half, div], [norm])
            index = GraphIndex(model.graph)
            changed += 1
        index.drop_unused_initializers()
        return changed

    @staticmethod
    def _lp_root(index: GraphIndex, div) -> str | None:
        """The x of x / (ReduceSum(x ** 2) ** 0.5), when `div` ends that pattern."""
        chain = []
        value = div.input[1]
        for op_type in ("Pow", "ReduceSum", "Pow"):
            node = index.producer.get(value)
            if node is None or node.op_type != op_type or len(index.consumers[node.output[0]]) != 1:
                return None
            chain.append(node)
            value = node.input[0]
        half, _, square = chain
        half_exponent, square_exponent = index.array(half.input[1]), index.array(square.input[1])
        if half_exponent is None or square_exponent is None or half_exponent.size != 1 or square_exponent.size != 1:
            return None
        if (half_exponent.item(), square_exponent.item()) != (0.5, 2.0):
            return None
        return value if value == div.input[0] else None


class ReplaceErfWithTanh(Surgeon):
    description = "Erf(x) becomes Tanh(x * 605/503), its rational approximation, for NPUs without Erf."
    surgeon: Literal["ReplaceErfWithTanh"]

    def apply(self, model) -> int:
        index = GraphIndex(model.graph)
        changed = 0
        for erf in list(model.graph.node):
            if erf.op_type != "Erf":
                continue
            name = erf.name or erf.output[0]
            scale = index.add_initializer(np.array(605 / 503, dtype=np.float32), f"{name}/tanh_scale")
            mul = _node("Mul", [erf.input[0], scale], f"{name}/Mul")
            tanh = _node("Tanh", [mul.output[0]], f"{name}/Tanh")
            tanh.output[0] = erf.output[0]
            index.replace_nodes([erf], [mul, tanh])
            changed += 1
        return changed


class AttentionMaskToSequenceLengths(Surgeon):
    description = ("In a GroupQueryAttention model, the attention_mask input and the subgraph computing the "
                   "sequence lengths from it become two inputs: past_seq_len [batch, 1] and total_seq_len (int32).")
    surgeon: Literal["AttentionMaskToSequenceLengths"]

    def apply(self, model) -> int:
        from onnx import TensorProto, helper

        index = GraphIndex(model.graph)
        gqa = next((node for node in model.graph.node if node.op_type == "GroupQueryAttention"), None)
        if gqa is None or "attention_mask" not in index.inputs or gqa.input[5] in index.inputs:
            return 0
        batch = next(v for v in model.graph.input if v.name == "input_ids").type.tensor_type.shape.dim[0]
        doomed = self._mask_subgraph(index)
        if doomed is None:
            return 0
        lengths = {gqa.input[5]: "past_seq_len", gqa.input[6]: "total_seq_len"}
        for node in model.graph.node:
            node.input[:] = [lengths.get(name, name) for name in node.input]
        kept = [node for node in model.graph.node if tuple(node.output) not in doomed]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        inputs = [value for value in model.graph.input if value.name != "attention_mask"]
        past = helper.make_tensor_value_info("past_seq_len", TensorProto.INT32, [batch.dim_param or batch.dim_value, 1])
        total = helper.make_tensor_value_info("total_seq_len", TensorProto.INT32, [])
        del model.graph.input[:]
        model.graph.input.extend([*inputs, past, total])
        GraphIndex(model.graph).drop_unused_initializers()
        return 1

    @staticmethod
    def _mask_subgraph(index: GraphIndex) -> set[tuple[str, ...]] | None:
        """The nodes computed from attention_mask; None when one of them feeds anything but the sequence lengths."""
        doomed: set[tuple[str, ...]] = set()
        pending = list(index.consumers["attention_mask"])
        while pending:
            node = pending.pop()
            if tuple(node.output) in doomed:
                continue
            if any(name in index.outputs for name in node.output):
                return None
            doomed.add(tuple(node.output))
            for name in node.output:
                for consumer in index.consumers[name]:
                    if consumer.op_type != "GroupQueryAttention":
                        pending.append(consumer)
                    elif list(consumer.input).index(name) not in (5, 6):
                        return None
        return doomed


class RemoveRopeMultiCache(Surgeon):
    description = ("A LongRoPE model's two rotary caches (short and long context, chosen by an If on the sequence "
                   "length) become one constant cache: the short one, or the long one with use_large_cache.")
    surgeon: Literal["RemoveRopeMultiCache"]
    use_large_cache: bool = Field(False, description="Keep the long-context cache instead of the short one.")

    def apply(self, model) -> int:
        from onnx import numpy_helper

        index = GraphIndex(model.graph)
        first = next((node for node in model.graph.node
                      if node.op_type in ("GroupQueryAttention", "RotaryEmbedding")), None)
        positions = (7, 8) if first is not None and first.op_type == "GroupQueryAttention" else (2, 3)
        if first is None or len(first.input) <= positions[1]:
            return 0
        caches = [first.input[position] for position in positions]
        choice = index.producer.get(caches[0])
        if choice is None or choice.op_type != "If" or caches[1] not in choice.output:
            return 0
        branch = next(attribute.g for attribute in choice.attribute
                      if attribute.name == ("then_branch" if self.use_large_cache else "else_branch"))
        branch_index = GraphIndex(branch)
        singles = {}
        for name in caches:
            array = branch_index.array(branch.output[list(choice.output).index(name)].name)
            if array is None:
                return 0
            singles[name] = numpy_helper.from_array(array, f"{name}_single")
        model.graph.initializer.extend(singles.values())
        for node in model.graph.node:
            node.input[:] = [singles[name].name if name in singles else name for name in node.input]
        condition = index.producer.get(choice.input[0])
        doomed = [choice]
        if condition is not None and condition.op_type == "Greater" and len(index.consumers[condition.output[0]]) == 1:
            doomed.append(condition)
        kept = [node for node in model.graph.node if tuple(node.output) not in {tuple(n.output) for n in doomed}]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        index.drop_unused_initializers()
        return 1


SURGEONS: dict[str, type[Surgeon]] = {
    cls.__name__: cls for cls in (
        TieWordEmbeddings, MatMulAddToGemm, ReplaceAttentionMaskValue, SimplifiedLayerNormToL2Norm,
        AttentionMaskToSequenceLengths, RemoveRopeMultiCache, PowReduceSumPowDiv2LpNorm, ReplaceErfWithTanh,
    )
}
