"""OnnxFloatToFloat16: an ONNX model's float32 tensors to float16, as a pass."""

from pydantic import Field

from olivepress.models.handles import OnnxModel
from olivepress.models.onnx_adapters import graph_lora_inputs
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import (
    ExternalDataOptions,
    copy_side_files,
    load_onnx,
    save_onnx,
)

FLOAT16_MIN_POSITIVE = 5.96e-08
FLOAT16_MAX = 65504.0


class OnnxFloatToFloat16Config(ExternalDataOptions):
    keep_io_types: bool = Field(
        True, description="Keep float32 graph inputs and outputs (Cast nodes convert at the edges). LoRA inputs "
                          "stay float32 either way, as adapter files hold float32 weights."
    )
    op_block_list: list[str] | None = Field(
        None, description="Op types kept in float32; default onnxruntime's list (TopK, Range, CumSum, ...)."
    )
    node_block_list: list[str] | None = Field(None, description="Node names kept in float32.")
    min_positive_val: float = Field(
        FLOAT16_MIN_POSITIVE, ge=FLOAT16_MIN_POSITIVE, description="Smaller positive constants are raised to this."
    )
    max_finite_val: float = Field(
        FLOAT16_MAX, le=FLOAT16_MAX, description="Larger constants are clipped to this (negatives likewise)."
    )


class OnnxFloatToFloat16(Pass[OnnxModel, OnnxFloatToFloat16Config]):
    name = "OnnxFloatToFloat16"
    description = "Convert an ONNX model's float32 weights and computation to float16."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxFloatToFloat16Config

    def run(self, model: OnnxModel, config: OnnxFloatToFloat16Config, context: PassContext) -> OnnxModel:
        import onnx
        from onnx.external_data_helper import load_external_data_for_model
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # Shape inference on the graph alone (it needs no weight values) also works past protobuf's 2 GB.
        proto = onnx.shape_inference.infer_shapes(load_onnx(model, with_weights=False))
        load_external_data_for_model(proto, str(model.path))
        converted = convert_float_to_float16(
            proto, min_positive_val=config.min_positive_val, max_finite_val=config.max_finite_val,
            keep_io_types=config.keep_io_types or list(graph_lora_inputs(proto.graph)), disable_shape_infer=True,
            op_block_list=config.op_block_list, node_block_list=config.node_block_list,
        )
        save_onnx(converted, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)
