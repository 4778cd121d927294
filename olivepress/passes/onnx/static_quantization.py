"""OnnxStaticQuantization and OnnxQuantization: ONNX Runtime's int8/int16 quantization with activation ranges
calibrated on a data config (Olive's parameter names; both of Olive's spellings of the types, int8 and QInt8)."""

import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.calibration import FeedReader, graph_feeds, input_types
from olivepress.passes.onnx.model_files import ExternalDataOptions, load_onnx, onnx_path
from olivepress.passes.onnx.quantization import (
    INTEGER_OPS,
    QUANT_TYPES,
    Precision,
    check_node_names,
    count_ops,
    dynamic_quantized,
    lora_nodes,
    quantized_output,
    quiet_quantizers,
)

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


class OnnxStaticQuantizationConfig(ExternalDataOptions):
    data_config_fields = ("data_config",)
    search_defaults = {"calibrate_method": ("MinMax", "Entropy", "Percentile"), "per_channel": (False, True)}

    data_config: str = Field(description="The data config whose batches calibrate the activation ranges.")
    quant_format: Literal["QDQ", "QOperator"] = Field(
        "QDQ", description="QDQ: QuantizeLinear/DequantizeLinear around float ops; QOperator: quantized ops (QLinearMatMul...)."
    )
    precision: Precision = Field(
        "int8", validation_alias=AliasChoices("precision", "weight_type"),
        description="The weights' type: int8, uint8, int16, uint16 (QInt8... accepted too).",
    )
    activation_type: Precision = Field("int8", description="The activations' type: int8, uint8, int16, uint16.")
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="How activation ranges come from the calibration data."
    )
    calibration_providers: list[str] | None = Field(
        None, description="Execution providers of the calibration session; default CPUExecutionProvider."
    )
    per_channel: bool = Field(False, description="One weight scale per output channel instead of one per tensor.")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI.")
    op_types_to_quantize: list[str] | None = Field(None, description="Op types to quantize; default every type it can.")
    op_types_to_exclude: list[str] | None = Field(
        None, description="Op types left float (used when op_types_to_quantize is not set)."
    )
    nodes_to_quantize: list[str] | None = Field(None, description="Only these nodes; default every quantizable node.")
    nodes_to_exclude: list[str] = Field(default_factory=list, description="Node names kept in float.")
    quant_preprocess: bool = Field(
        True, description="Run onnxruntime's quantization pre-processing (shape inference, graph optimization) first."
    )
    ActivationSymmetric: bool = Field(False, description="Symmetric activation ranges (zero point 0).")
    WeightSymmetric: bool = Field(True, description="Symmetric weight ranges.")
    ForceQuantizeNoInputCheck: bool = Field(
        False, description="Quantize ops such as Transpose and MaxPool even when their input is not quantized."
    )
    MatMulConstBOnly: bool = Field(False, description="Quantize only MatMuls whose second input is a constant.")
    extra_options: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Further onnxruntime quantize_static extra_options."
    )

    @model_validator(mode="after")
    def _qoperator_is_8_bits(self) -> "OnnxStaticQuantizationConfig":
        if self.quant_format == "QOperator" and "16" in self.precision + self.activation_type:
            raise ValueError("quant_format: QOperator quantizes to 8 bits only; use QDQ for int16/uint16")
        return self


class OnnxStaticQuantization(Pass[OnnxModel, OnnxStaticQuantizationConfig]):
    name = "OnnxStaticQuantization"
    description = "Quantize weights and activations to int8/int16 with ranges calibrated on a data config (QDQ or QOperator)."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxStaticQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxStaticQuantizationConfig, context: PassContext) -> OnnxModel:
        return static_quantized(model, config, context)


class OnnxQuantizationConfig(OnnxStaticQuantizationConfig):
    quant_mode: Literal["static", "dynamic"] = Field(
        "static", description="static: calibrated activation ranges (needs data_config); dynamic: ranges computed at run time."
    )
    data_config: str | None = Field(  # type: ignore[assignment]
        None, description="With quant_mode static: the data config whose batches calibrate the activation ranges."
    )

    @model_validator(mode="after")
    def _static_needs_data(self) -> "OnnxQuantizationConfig":
        if self.quant_mode == "static" and self.data_config is None:
            raise ValueError("data_config: static quantization calibrates on a data config; name one, or set quant_mode: dynamic")
        if self.quant_mode == "dynamic" and self.precision not in ("int8", "uint8"):
            raise ValueError("precision: dynamic quantization has int8 or uint8 weights")
        return self


class OnnxQuantization(Pass[OnnxModel, OnnxQuantizationConfig]):
    name = "OnnxQuantization"
    description = "Olive's combined ONNX quantization: static (calibrated, as OnnxStaticQuantization) or dynamic int8."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxQuantizationConfig

    def run(self, model: OnnxModel, config: OnnxQuantizationConfig, context: PassContext) -> OnnxModel:
        if config.quant_mode == "static":
            return static_quantized(model, config, context)
        output = dynamic_quantized(model, config, config.precision, context)
        return quantized_output(model, output, config, context, {"quantized_nodes": count_ops(output, INTEGER_OPS)})


def static_quantized(model: OnnxModel, config: OnnxStaticQuantizationConfig, context: PassContext) -> OnnxModel:
    import onnx

    assert config.data_config is not None  # required by both configs in static mode
    graph = load_onnx(model, with_weights=False).graph
    for field in ("nodes_to_exclude", "nodes_to_quantize"):
        check_node_names(graph, getattr(config, field) or [], field)
    if config.quant_format == "QOperator" and config.precision == config.activation_type == "int8":
        context.logger.warning("OnnxStaticQuantization: int8 weights and activations in QOperator form run slowly on "
                               "x86-64 CPUs; QDQ is the usual choice")
    feeds = graph_feeds(model, context.data_config(config.data_config), input_types(graph))
    source = _preprocessed(model, context) if config.quant_preprocess else onnx_path(model)
    quantized = context.scratch_dir / "quantized" / model.onnx_file_name
    quantized.parent.mkdir()
    with quiet_quantizers():
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        quantize_static(
            str(source), str(quantized), FeedReader(feeds), quant_format=QuantFormat[config.quant_format],
            op_types_to_quantize=_op_types(config, graph), per_channel=config.per_channel,
            reduce_range=config.reduce_range, activation_type=QuantType[QUANT_TYPES[config.activation_type]],
            weight_type=QuantType[QUANT_TYPES[config.precision]], nodes_to_quantize=config.nodes_to_quantize,
            nodes_to_exclude=[*config.nodes_to_exclude, *lora_nodes(graph)], use_external_data_format=True,
            calibrate_method=CalibrationMethod[config.calibrate_method],
            calibration_providers=_calibration_providers(config, context), extra_options=_extra_options(config),
        )
    output = onnx.load(str(quantized))
    quantized_ops = sum(node.op_type.startswith("QLinear") or node.op_type in INTEGER_OPS for node in output.graph.node)
    metrics = {"calibration_batches": len(feeds), "qdq_nodes": count_ops(output, QDQ_OPS), "quantized_ops": quantized_ops}
    return quantized_output(model, output, config, context, metrics)


# Run in its own process: on a graph it cannot fully infer, onnxruntime's symbolic shape inference writes a debug
# copy of the model into the working directory, which must be the scratch folder, not the user's.
_PREPROCESS = (
    "import sys\n"
    "from onnxruntime.quantization.shape_inference import quant_pre_process\n"
    "quant_pre_process(sys.argv[1], sys.argv[2], auto_merge=True, save_as_external_data=True,\n"
    "                  all_tensors_to_one_file=True, external_data_location=sys.argv[3])\n"
)


def _preprocessed(model: OnnxModel, context: PassContext) -> Path:
    """The graph after onnxruntime's quant_pre_process (symbolic shape inference and graph optimization), or, as
    Olive does, the graph as it is, with a warning, where the pre-processor cannot read it."""
    path = context.scratch_dir / "preprocessed" / model.onnx_file_name
    path.parent.mkdir()
    result = subprocess.run([sys.executable, "-c", _PREPROCESS, str(onnx_path(model)), str(path), f"{path.name}.data"],
                            cwd=context.scratch_dir, capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        context.logger.warning("OnnxStaticQuantization: quant_preprocess skipped, onnxruntime's pre-processing "
                               "failed on this graph (%s)", reason[:200])
        return onnx_path(model)
    return path


def _op_types(config: OnnxStaticQuantizationConfig, graph) -> list[str] | None:
    """op_types_to_quantize, or, with op_types_to_exclude only, every quantizable type in the graph but those."""
    if config.op_types_to_quantize or not config.op_types_to_exclude:
        return config.op_types_to_quantize
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantizable = set(QDQRegistry if config.quant_format == "QDQ" else QLinearOpsRegistry)
    return sorted({node.op_type for node in graph.node} & quantizable - set(config.op_types_to_exclude))


def _calibration_providers(config: OnnxStaticQuantizationConfig, context: PassContext) -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    asked = config.calibration_providers or ["CPUExecutionProvider"]
    usable = [provider for provider in asked if provider in available]
    if len(usable) < len(asked):
        context.logger.warning("OnnxStaticQuantization: calibration_providers %s not available here; calibrating on %s",
                               ", ".join(p for p in asked if p not in usable), ", ".join(usable or ["CPUExecutionProvider"]))
    return usable or ["CPUExecutionProvider"]


def _extra_options(config: OnnxStaticQuantizationConfig) -> dict:
    """extra_options with the exposed ones: a parameter set in the document, else extra_options' entry, else its default."""
    exposed = ("ActivationSymmetric", "WeightSymmetric", "ForceQuantizeNoInputCheck", "MatMulConstBOnly")
    both = [name for name in exposed if name in config.extra_options and name in config.model_fields_set]
    if both:
        raise OlivepressError(f"extra_options: {both[0]} is given both as a parameter and in extra_options; keep one")
    return {**{name: getattr(config, name) for name in exposed}, **config.extra_options}
