"""OnnxConversion of a PyTorchModel: the user's module traced with its io_config and its example inputs.

Imported by OnnxConversion.run only, so torch is imported here at the top."""

import torch

from olivepress.config.sections import IoConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel, PyTorchModel
from olivepress.models.loading import torch_dtype
from olivepress.models.pytorch import dummy_inputs, io_config_of, load_pytorch_model
from olivepress.passes.base import PassContext
from olivepress.passes.onnx.conversion import (
    OnnxConversionConfig,
    example_inputs,
    export,
    export_device,
    select_outputs,
)
from olivepress.passes.onnx.model_files import save_onnx

DEFAULT_VOCAB = 2  # example token ids stay in [0, 2) when the model does not say its vocabulary size


def export_pytorch_model(model: PyTorchModel, config: OnnxConversionConfig, context: PassContext) -> OnnxModel:
    import onnx

    written = config.io_config or _io_config(model)
    device = export_device(config.device, context)
    module = load_pytorch_model(model).to(device=device, dtype=torch_dtype(config.torch_dtype))
    given = dummy_inputs(model)
    names = list(given) if isinstance(given, dict) else None
    example = _as_tuple(given) if given is not None else example_inputs(written, DEFAULT_VOCAB)
    positional = Positional(module, written.output_names, names)
    exported = context.scratch_dir / "export" / "model.onnx"
    exported.parent.mkdir()
    export(positional, tuple(tensor.to(device) for tensor in example), written, config, exported, context)
    save_onnx(onnx.load(str(exported)), context.output_dir, options=config)
    return OnnxModel(path=context.output_dir)


def _io_config(model: PyTorchModel) -> IoConfig:
    value = io_config_of(model)
    if value is None:
        raise OlivepressError("input_model.io_config: OnnxConversion of a PyTorchModel needs its io_config "
                              "(input_names, output_names, and input_shapes or a dummy_inputs_func)")
    return IoConfig.model_validate(value)


def _as_tuple(inputs) -> tuple:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, dict):
        return tuple(inputs.values())
    if isinstance(inputs, (list, tuple)):
        return tuple(inputs)
    raise OlivepressError(f"input_model.dummy_inputs_func returned a {type(inputs).__name__}; return a tensor, a "
                          "tuple of tensors or a dict of tensors by forward argument")


class Positional(torch.nn.Module):
    """The user's module called with the example's positional (or, for a dict, keyword) inputs; its output as the
    tuple that the graph's output_names name."""

    def __init__(self, module: torch.nn.Module, output_names: list[str], keywords: list[str] | None):
        super().__init__()
        self.module = module
        self.output_names = output_names
        self.keywords = keywords

    def forward(self, *inputs):
        if self.keywords is not None:
            outputs = self.module(**dict(zip(self.keywords, inputs, strict=True)))
        else:
            outputs = self.module(*inputs)
        return outputs if isinstance(outputs, torch.Tensor) else select_outputs(outputs, self.output_names)
