"""Olive's ONNX weight-only quantizers under their own names (OnnxBlockWiseRtnQuantization, OnnxHqqQuantization,
OnnxKQuantQuantization), with Olive's parameters and defaults, done by OnnxMatMulNBits' algorithms."""

from typing import Literal

from pydantic import Field

from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, load_onnx
from olivepress.passes.onnx.quantization import (
    INT4_OPSET,
    OnnxMatMulNBits,
    OnnxMatMulNBitsConfig,
    opset_of,
)


class WeightOnlyOptions(ExternalDataOptions):
    block_size: Literal[16, 32, 64, 128, 256] = Field(128, description="Weights per quantization block (along K).")
    nodes_to_exclude: list[str] = Field(default_factory=list, description="Node names kept in float.")
    nodes_to_include: list[str] | None = Field(None, description="Only these nodes are quantized; default all.")

    def nbits_config(self, **settings) -> OnnxMatMulNBitsConfig:
        external = {name: getattr(self, name) for name in ExternalDataOptions.model_fields}
        return OnnxMatMulNBitsConfig(block_size=self.block_size, nodes_to_exclude=self.nodes_to_exclude,
                                     nodes_to_include=self.nodes_to_include, **external, **settings)


class OnnxBlockWiseRtnQuantizationConfig(WeightOnlyOptions):
    bits: Literal[4, 8] = Field(4, description="Weight bits.")
    is_symmetric: bool = Field(True, description="Symmetric (no zero points) or asymmetric quantization.")
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, description="Minimum accuracy of the MatMul activations: 1 fp32, 2 fp16, 3 bf16, 4 int8."
    )


class OnnxBlockWiseRtnQuantization(Pass[OnnxModel, OnnxBlockWiseRtnQuantizationConfig]):
    """As in Olive, MatMul weights and the embedding (Gather) are quantized; a 4-bit Gather needs opset 21, and in
    an older graph the embedding stays float, with a warning."""

    name = "OnnxBlockWiseRtnQuantization"
    description = "Olive's block-wise round-to-nearest weight-only quantization (MatMulNBits, GatherBlockQuantized)."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxBlockWiseRtnQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxBlockWiseRtnQuantizationConfig, context: PassContext) -> OnnxModel:
        proto = load_onnx(model, with_weights=False)
        op_types: list[Literal["MatMul", "Gather"]] = ["MatMul"]
        if any(node.op_type == "Gather" for node in proto.graph.node):
            if config.bits == 4 and opset_of(proto) >= INT4_OPSET:
                op_types.append("Gather")
            else:
                context.logger.warning("OnnxBlockWiseRtnQuantization: the embedding (Gather) stays float: it is "
                                       "quantized at 4 bits in graphs of opset %d or later (this one: %d bits, "
                                       "opset %d)", INT4_OPSET, config.bits, opset_of(proto))
        nbits = config.nbits_config(algorithm="RTN", bits=config.bits, is_symmetric=config.is_symmetric,
                                    accuracy_level=config.accuracy_level, op_types_to_quantize=op_types)
        return OnnxMatMulNBits().run(model, nbits, context)


class OnnxHqqQuantizationConfig(WeightOnlyOptions):
    pass


class OnnxHqqQuantization(Pass[OnnxModel, OnnxHqqQuantizationConfig]):
    name = "OnnxHqqQuantization"
    description = "Olive's HQQ (half-quadratic) 4-bit weight-only quantization of MatMul weights."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxHqqQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxHqqQuantizationConfig, context: PassContext) -> OnnxModel:
        return OnnxMatMulNBits().run(model, config.nbits_config(algorithm="HQQ", bits=4), context)


class OnnxKQuantQuantizationConfig(WeightOnlyOptions):
    bits: Literal[4, 8] = Field(4, description="Weight bits.")
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, description="Minimum accuracy of the MatMul activations: 1 fp32, 2 fp16, 3 bf16, 4 int8."
    )


class OnnxKQuantQuantization(Pass[OnnxModel, OnnxKQuantQuantizationConfig]):
    name = "OnnxKQuantQuantization"
    description = "Olive's k-quant (llama.cpp-style weighted scale search) weight-only quantization of MatMul weights."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxKQuantQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxKQuantQuantizationConfig, context: PassContext) -> OnnxModel:
        nbits = config.nbits_config(algorithm="k_quant", bits=config.bits, accuracy_level=config.accuracy_level)
        return OnnxMatMulNBits().run(model, nbits, context)
