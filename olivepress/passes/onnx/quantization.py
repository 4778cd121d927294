"""ONNX Runtime's int8 dynamic quantization and its n-bit weight-only MatMul quantization, as passes.

Neither touches LoRA: nodes named by the adapter naming contract (olivepress.models.onnx_adapters:
.../lora_A/MatMul, .../lora_B/MatMul) stay float, and so does any MatMul whose weight is a graph input,
so that adapter files keep fitting the graph.
"""

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import AliasChoices, BeforeValidator, Field

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.models.onnx_adapters import is_lora_node
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import (
    ExternalDataOptions,
    copy_side_files,
    load_onnx,
    save_onnx,
)

# The input of each weight-quantizable op type that holds its weight.
WEIGHT_INPUT = {"MatMul": 1, "Gather": 0}
# What the quantized nodes become (counted into the pass's metrics).
INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLSTM"}
NBITS_OPS = {"MatMulNBits", "GatherBlockQuantized"}
INT4_OPSET = 21
# onnxruntime's QuantType name of each integer type.
QUANT_TYPES = {"int8": "QInt8", "uint8": "QUInt8", "int16": "QInt16", "uint16": "QUInt16"}


def _olive_type_name(value: object) -> object:
    """Olive writes int8 (0.7 on) and QInt8 (before): both name the same type."""
    if isinstance(value, str):
        lowered = value.lower()
        return lowered[1:] if lowered.startswith("q") and lowered[1:] in QUANT_TYPES else lowered
    return value


Precision = Annotated[Literal["int8", "uint8", "int16", "uint16"], BeforeValidator(_olive_type_name)]
Int8Precision = Annotated[Literal["int8", "uint8"], BeforeValidator(_olive_type_name)]


def lora_nodes(graph) -> list[str]:
    return [node.name for node in graph.node if is_lora_node(node.name)]


def variable_weight_nodes(graph, op_types: Sequence[str]) -> list[str]:
    """Nodes of `op_types` whose weight is not a constant: a graph input (overridable, even with an
    initializer as its default) or a computed tensor. Unnamed ones get a name, so they can be excluded."""
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = {value.name for value in graph.input}
    names = []
    for index, node in enumerate(graph.node):
        if node.op_type not in op_types or len(node.input) <= WEIGHT_INPUT[node.op_type]:
            continue
        weight = node.input[WEIGHT_INPUT[node.op_type]]
        if weight in inputs or weight not in initializers:
            node.name = node.name or f"{node.op_type}_{index}"
            names.append(node.name)
    return names


def check_node_names(graph, names: list[str], field: str) -> None:
    known = [node.name for node in graph.node]
    for name in sorted(set(names) - set(known)):
        raise OlivepressError(f"{field}: no node named '{name}' in the graph{did_you_mean(name, known)}")


@contextlib.contextmanager
def quiet_quantizers() -> Iterator[None]:
    """onnxruntime's quantizers log each node through the root logger (one calls logging.basicConfig when
    imported), print a progress bar on stdout and pass on torch's warnings; keep them out of the CLI's output."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    if not root.handlers:
        root.addHandler(logging.NullHandler())  # makes basicConfig a no-op
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def quantized_output(model: OnnxModel, proto, config: ExternalDataOptions, context: PassContext,
                      metrics: dict[str, float]) -> OnnxModel:
    save_onnx(proto, context.output_dir, model.onnx_file_name, config)
    copy_side_files(model, context.output_dir)
    context.metrics.update(metrics)
    return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def count_ops(proto, op_types: set[str]) -> int:
    return sum(node.op_type in op_types for node in proto.graph.node)


# ---- dynamic int8 -----------------------------------------------------------------------------

class OnnxDynamicQuantizationConfig(ExternalDataOptions):
    added_fields = ("MatMulConstBOnly",)  # out of the cache key while unset
    weight_type: Int8Precision = Field(
        "int8", validation_alias=AliasChoices("weight_type", "precision"),
        description="The weights' type: int8 or uint8 (QInt8, QUInt8 accepted too).",
    )
    op_types_to_quantize: list[str] | None = Field(
        None, description="Op types to quantize (e.g. MatMul, Gemm, Attention); default every type it supports."
    )
    nodes_to_exclude: list[str] = Field(default_factory=list, description="Node names kept in float.")
    per_channel: bool = Field(False, description="One scale per output channel instead of one per tensor.")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI.")
    extra_options: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="onnxruntime quantize_dynamic extra_options, e.g. {MatMulConstBOnly: true}."
    )
    MatMulConstBOnly: bool | None = Field(
        None, description="Quantize only MatMuls whose second input is a constant (an extra option Olive exposes as a "
        "parameter); default onnxruntime's, true for dynamic quantization."
    )


class OnnxDynamicQuantization(Pass[OnnxModel, OnnxDynamicQuantizationConfig]):
    name = "OnnxDynamicQuantization"
    description = "Quantize weights to int8 and activations on the fly (MatMulInteger, DynamicQuantizeLinear)."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxDynamicQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxDynamicQuantizationConfig, context: PassContext) -> OnnxModel:
        output = dynamic_quantized(model, config, config.weight_type, context)
        return quantized_output(model, output, config, context, {"quantized_nodes": count_ops(output, INTEGER_OPS)})


class DynamicSettings(Protocol):
    """The parameters quantize_dynamic reads, shared by OnnxDynamicQuantization and OnnxQuantization."""

    op_types_to_quantize: list[str] | None
    nodes_to_exclude: list[str]
    per_channel: bool
    reduce_range: bool
    extra_options: dict[str, bool | int | float | str]

    @property
    def MatMulConstBOnly(self) -> bool | None: ...  # noqa: N802 (onnxruntime's extra option, as Olive names it)

    @property
    def model_fields_set(self) -> set[str]: ...



def dynamic_quantized(model: OnnxModel, config: DynamicSettings, precision: str, context: PassContext):
    """The model's graph after onnxruntime's quantize_dynamic, with `config`'s op types, nodes to exclude,
    per_channel, reduce_range and extra_options; LoRA nodes stay float."""
    import onnx

    proto = load_onnx(model)
    check_node_names(proto.graph, config.nodes_to_exclude, "nodes_to_exclude")
    excluded = [*config.nodes_to_exclude, *lora_nodes(proto.graph)]
    quantized = context.scratch_dir / "quantized" / model.onnx_file_name
    quantized.parent.mkdir()
    # Shape inference gives contrib ops' outputs (Attention, SkipLayerNormalization of an optimized graph)
    # no type; the quantizer then needs to be told that such weights are float.
    extra_options: dict[str, Any] = {"DefaultTensorType": onnx.TensorProto.FLOAT, **config.extra_options}
    # set as a parameter, as Olive exposes it (OnnxQuantization's static default does not apply to dynamic mode)
    if "MatMulConstBOnly" in config.model_fields_set and config.MatMulConstBOnly is not None:
        if "MatMulConstBOnly" in config.extra_options:
            raise OlivepressError("extra_options: MatMulConstBOnly is given both as a parameter and in extra_options; "
                                  "keep one")
        extra_options["MatMulConstBOnly"] = config.MatMulConstBOnly
    with quiet_quantizers():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(proto, quantized, op_types_to_quantize=config.op_types_to_quantize,
                         per_channel=config.per_channel, reduce_range=config.reduce_range,
                         weight_type=QuantType[QUANT_TYPES[precision]], nodes_to_exclude=excluded,
                         use_external_data_format=True, extra_options=extra_options)
    return onnx.load(str(quantized))


# ---- n-bit weight-only ------------------------------------------------------------------------

class OnnxMatMulNBitsConfig(ExternalDataOptions):
    search_defaults = {"block_size": (32, 64, 128), "algorithm": ("RTN", "HQQ", "k_quant")}

    bits: Literal[4, 8] = Field(4, description="Weight bits.")
    block_size: Literal[16, 32, 64, 128, 256] = Field(32, description="Weights per quantization block (along K).")
    is_symmetric: bool = Field(True, description="RTN: symmetric (no zero points) or asymmetric quantization.")
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, description="Minimum accuracy of the MatMul activations: 1 fp32, 2 fp16, 3 bf16, 4 int8 (RTN, k_quant)."
    )
    algorithm: Literal["RTN", "HQQ", "k_quant"] = Field(
        "RTN", description="RTN: round to nearest per block (ONNX Runtime's default quantizer); HQQ: half-quadratic "
                           "optimized zero points; k_quant: llama.cpp-style weighted scale search."
    )
    nodes_to_exclude: list[str] = Field(default_factory=list, description="Node names kept in float, e.g. /lm_head/MatMul.")
    nodes_to_include: list[str] | None = Field(None, description="Only these nodes are quantized; default all.")
    op_types_to_quantize: list[Literal["MatMul", "Gather"]] = Field(
        default=["MatMul"], description="Op types to quantize; Gather (embeddings) with RTN at 4 bits only."
    )


class OnnxMatMulNBits(Pass[OnnxModel, OnnxMatMulNBitsConfig]):
    name = "OnnxMatMulNBits"
    description = "Quantize MatMul (and Gather) weights to 4 or 8 bits per block (MatMulNBits), LoRA kept float."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxMatMulNBitsConfig

    def run(self, model: OnnxModel, config: OnnxMatMulNBitsConfig, context: PassContext) -> OnnxModel:
        import onnx

        _check_algorithm_options(config)
        proto = load_onnx(model)
        check_node_names(proto.graph, config.nodes_to_exclude, "nodes_to_exclude")
        check_node_names(proto.graph, config.nodes_to_include or [], "nodes_to_include")
        if "Gather" in config.op_types_to_quantize and opset_of(proto) < INT4_OPSET:
            raise OlivepressError(
                f"op_types_to_quantize: a quantized Gather holds int4 tensors, which need opset {INT4_OPSET}, but "
                f"the model is opset {opset_of(proto)}; export it at opset {INT4_OPSET} or quantize MatMul only"
            )
        protected = [*lora_nodes(proto.graph), *variable_weight_nodes(proto.graph, config.op_types_to_quantize),
                     *_not_included(proto.graph, config)]
        context.logger.debug("OnnxMatMulNBits keeps %d LoRA / variable-weight nodes float", len(protected))
        with quiet_quantizers():
            from onnxruntime.quantization.matmul_nbits_quantizer import (
                MatMulNBitsQuantizer,
            )

            quantizer = MatMulNBitsQuantizer(
                proto, bits=config.bits, block_size=config.block_size, is_symmetric=config.is_symmetric,
                accuracy_level=config.accuracy_level, nodes_to_exclude=[*config.nodes_to_exclude, *protected],
                op_types_to_quantize=tuple(config.op_types_to_quantize), algo_config=_algo_config(config, proto.graph),
            )
            quantizer.process()
        output = quantizer.model.model
        if not any(entry.domain == "com.microsoft" for entry in output.opset_import):
            output.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))  # k_quant leaves it out
        return quantized_output(model, output, config, context, {"quantized_nodes": count_ops(output, NBITS_OPS)})


def _check_algorithm_options(config: OnnxMatMulNBitsConfig) -> None:
    if "Gather" in config.op_types_to_quantize and (config.algorithm != "RTN" or config.bits != 4):
        raise OlivepressError("op_types_to_quantize: Gather is quantized by the RTN algorithm at 4 bits only")
    if config.algorithm == "HQQ" and config.bits != 4:
        raise OlivepressError("bits: HQQ quantizes to 4 bits only")
    if config.algorithm == "HQQ" and config.accuracy_level is not None:
        raise OlivepressError("accuracy_level: HQQ does not set an accuracy level; use RTN or k_quant")


def _not_included(graph, config: OnnxMatMulNBitsConfig) -> list[str]:
    """With nodes_to_include, every other node of the quantized op types (onnxruntime's own option would add the
    listed nodes to the op types instead of restricting to them)."""
    if config.nodes_to_include is None:
        return []
    return [node.name for node in graph.node
            if node.op_type in config.op_types_to_quantize and node.name not in config.nodes_to_include]


def opset_of(proto) -> int:
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def _algo_config(config: OnnxMatMulNBitsConfig, graph):
    """The onnxruntime algorithm config; None lets the quantizer build its default (RTN) one from its arguments."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        KQuantWeightOnlyQuantConfig,
    )

    if config.algorithm == "HQQ":
        return HQQWeightOnlyQuantConfig(block_size=config.block_size, bits=config.bits, op_types_to_quantize=("MatMul",))
    if config.algorithm == "k_quant":
        # k_quant's per-node settings start from a fixed 4 bits; the bits are set node by node.
        matmuls = {node.name: {"bits": config.bits} for node in graph.node if node.op_type == "MatMul"}
        return KQuantWeightOnlyQuantConfig(op_types_to_quantize=("MatMul",), customized_weight_config=matmuls)
    return None
