"""DynamicToFixedShape: symbolic input dimensions (or whole input shapes) made fixed, for NPUs that need static shapes."""

from pydantic import Field, model_validator

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files, load_onnx, save_onnx


class DynamicToFixedShapeConfig(ExternalDataOptions):
    dim_param: list[str] | None = Field(None, description="Symbolic dimension names to fix, e.g. [batch, sequence].")
    dim_value: list[int] | None = Field(None, description="The value of each dim_param, e.g. [1, 128].")
    input_name: list[str] | None = Field(None, description="Inputs whose whole shape is fixed.")
    input_shape: list[list[int]] | None = Field(None, description="The shape of each input_name.")

    @model_validator(mode="after")
    def _pairs(self) -> "DynamicToFixedShapeConfig":
        for names, values in (("dim_param", "dim_value"), ("input_name", "input_shape")):
            left, right = getattr(self, names), getattr(self, values)
            if (left is None) != (right is None) or (left is not None and len(left) != len(right)):
                raise ValueError(f"{names} and {values} go together, one value for each name")
        if self.dim_param is None and self.input_name is None:
            raise ValueError("give dim_param and dim_value, or input_name and input_shape")
        fixed = [*(self.dim_value or []), *(dim for shape in self.input_shape or [] for dim in shape)]
        if any(dim <= 0 for dim in fixed):
            raise ValueError("fixed dimensions must be positive")
        return self


class DynamicToFixedShape(Pass[OnnxModel, DynamicToFixedShapeConfig]):
    name = "DynamicToFixedShape"
    description = "Fix symbolic input dimensions (batch, sequence, ...) to given values, for static-shape NPUs."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = DynamicToFixedShapeConfig

    def run(self, model: OnnxModel, config: DynamicToFixedShapeConfig, context: PassContext) -> OnnxModel:
        from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed, make_input_shape_fixed

        proto = load_onnx(model)
        symbols = sorted({dim.dim_param for value in proto.graph.input for dim in value.type.tensor_type.shape.dim
                          if dim.dim_param})
        inputs = [value.name for value in proto.graph.input]
        for name in config.dim_param or []:
            if name not in symbols:
                raise OlivepressError(f"dim_param: '{name}' is no symbolic dimension of the graph's inputs"
                                      f"{did_you_mean(name, symbols)}; they have {', '.join(symbols) or 'none'}")
        for name in config.input_name or []:
            if name not in inputs:
                raise OlivepressError(f"input_name: the graph has no input '{name}'{did_you_mean(name, inputs)}")
        for name, value in zip(config.dim_param or [], config.dim_value or [], strict=True):
            make_dim_param_fixed(proto.graph, name, value)
        for name, shape in zip(config.input_name or [], config.input_shape or [], strict=True):
            make_input_shape_fixed(proto.graph, name, shape)
        fix_output_shapes(proto)
        save_onnx(proto, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)
