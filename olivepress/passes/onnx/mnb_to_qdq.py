"""MatMulNBitsToQDQ: 4-bit MatMulNBits nodes become standard ONNX DequantizeLinear (int4/uint4, block-wise) + MatMul,
the form NPU execution providers read. The weights keep their exact quantized values."""

import math

import numpy as np
from pydantic import Field

from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files, load_onnx, save_onnx
from olivepress.passes.onnx.quantization import INT4_OPSET, check_node_names, opset_of
from olivepress.passes.onnx.surgeons import GraphIndex


class MatMulNBitsToQDQConfig(ExternalDataOptions):
    use_transpose_op: bool = Field(
        False, description="Dequantize the weight as stored ([N, K]) and Transpose it, instead of storing it "
                           "transposed ([K, N]); may be faster on some execution providers (DirectML)."
    )
    use_int4: bool = Field(False, description="Store the weight as int4 (values - 8) instead of uint4.")
    add_zero_point: bool = Field(
        False, description="Give every DequantizeLinear a zero point, even where it is the default one."
    )
    nodes_to_exclude: list[str] = Field(default_factory=list, description="MatMulNBits node names left as they are.")


class MatMulNBitsToQDQ(Pass[OnnxModel, MatMulNBitsToQDQConfig]):
    name = "MatMulNBitsToQDQ"
    description = "Turn 4-bit MatMulNBits nodes into DequantizeLinear (int4/uint4) + MatMul, for NPU execution providers."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = MatMulNBitsToQDQConfig

    def run(self, model: OnnxModel, config: MatMulNBitsToQDQConfig, context: PassContext) -> OnnxModel:
        import onnx

        proto = load_onnx(model)
        check_node_names(proto.graph, config.nodes_to_exclude, "nodes_to_exclude")
        if opset_of(proto) < INT4_OPSET:  # block-wise DequantizeLinear of int4 tensors is opset 21
            proto = onnx.version_converter.convert_version(proto, INT4_OPSET)
        index = GraphIndex(proto.graph)
        converted = 0
        for node in list(proto.graph.node):
            if node.op_type == "MatMulNBits" and node.name not in config.nodes_to_exclude:
                replacement = _qdq_nodes(index, node, config)
                if replacement is not None:
                    index.replace_nodes([node], replacement)
                    converted += 1
        index.drop_unused_initializers()
        context.metrics["converted_nodes"] = converted
        save_onnx(proto, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def _qdq_nodes(index: GraphIndex, node, config: MatMulNBitsToQDQConfig) -> list | None:
    """DequantizeLinear (+ Transpose) + MatMul (+ Add for a bias) computing what `node` computes; None for a node
    this form cannot express (not 4 bits, a computed weight, a non-trivial g_idx)."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("bits", 4) != 4:
        return None
    k, n, block = attributes["K"], attributes["N"], attributes["block_size"]
    blocks = math.ceil(k / block)
    inputs = list(node.input) + [""] * (6 - len(node.input))  # A, B, scales, zero_points, g_idx, bias
    found = {position: index.array(inputs[position]) for position in range(1, 6) if inputs[position]}
    arrays = {position: array for position, array in found.items() if array is not None}
    if len(arrays) < len(found):
        return None
    if 4 in arrays and not np.array_equal(arrays[4].ravel(), np.arange(k) // block):
        return None
    per_axis = blocks == 1
    name = node.name.replace("MatMulNBits", "{op}") if "MatMulNBits" in node.name else f"{node.name or node.output[0]}/{{op}}"
    weight = _unpacked(arrays[1].reshape(n, -1))[:, :k]
    scales = arrays[2].reshape(n, blocks)
    zero_points = _unpacked(arrays[3].reshape(n, -1))[:, :blocks] if 3 in arrays else np.full((n, blocks), 8, np.uint8)
    if not config.use_transpose_op:
        weight, scales, zero_points = weight.T, scales.T, zero_points.T
    dq_inputs = [_int4_initializer(index, weight, f"{name.format(op='DequantizeLinear')}.qweight", config.use_int4),
                 index.add_initializer(scales.ravel() if per_axis else scales, f"{name.format(op='DequantizeLinear')}.scales")]
    # DequantizeLinear's default zero point is 0: stored 8 in int4 form, 0 in uint4 form (MatMulNBits' is 8).
    if config.add_zero_point or not np.all(zero_points == (8 if config.use_int4 else 0)):
        dq_inputs.append(_int4_initializer(index, zero_points.ravel() if per_axis else zero_points,
                                           f"{name.format(op='DequantizeLinear')}.qzeros", config.use_int4))
    axis = (1 if config.use_transpose_op else 0) ^ (1 if per_axis else 0)
    block_attribute = {} if per_axis else {"block_size": block}
    dequantize = helper.make_node("DequantizeLinear", dq_inputs, [f"{name.format(op='DequantizeLinear')}/output_0"],
                                  name=name.format(op="DequantizeLinear"), axis=axis, **block_attribute)
    nodes = [dequantize]
    if config.use_transpose_op:
        nodes.append(helper.make_node("Transpose", dequantize.output, [f"{name.format(op='Transpose')}/output_0"],
                                      name=name.format(op="Transpose"), perm=[1, 0]))
    nodes.append(helper.make_node("MatMul", [inputs[0], nodes[-1].output[0]], [f"{name.format(op='MatMul')}/output_0"],
                                  name=name.format(op="MatMul")))
    if 5 in arrays:
        nodes.append(helper.make_node("Add", [nodes[-1].output[0], inputs[5]], [f"{name.format(op='Add')}/output_0"],
                                      name=name.format(op="Add")))
    nodes[-1].output[0] = node.output[0]
    return nodes


def _unpacked(packed: np.ndarray) -> np.ndarray:
    """Rows of uint8 bytes, each two 4-bit values (low nibble first), as rows of values."""
    values = np.stack([packed & 0xF, packed >> 4], axis=-1)
    return values.reshape(packed.shape[0], -1).astype(np.uint8)


def _int4_initializer(index: GraphIndex, values: np.ndarray, name: str, signed: bool) -> str:
    """`values` (0..15) as a uint4 tensor, or as int4 (values - 8)."""
    from onnx import TensorProto, helper

    flat = values.ravel().astype(np.int16) - (8 if signed else 0)
    if flat.size % 2:
        flat = np.append(flat, 0)
    packed = ((flat[0::2] & 0xF) | ((flat[1::2] & 0xF) << 4)).astype(np.uint8)
    data_type = TensorProto.INT4 if signed else TensorProto.UINT4
    index.graph.initializer.append(helper.make_tensor(name, data_type, values.shape, packed.tobytes(), raw=True))
    return name
