"""QuantLinear: a linear layer over awq/gptq packed int4/int8 weights that dequantizes on the fly.

It subclasses nn.Linear (with `weight` set to None) so that PEFT's default dispatch wraps it in its
plain LoRA `Linear`: `get_peft_model` and `PeftModel.from_pretrained` work with no registration.
Merging an adapter into it is not possible (there is no float weight); `dequantize_linears` turns a
model back into float linears first.
"""

import torch
from torch import nn
from torch.nn import functional as F

from olivepress.quantization.formats import FORMATS
from olivepress.quantization.packing import QuantizedWeight, pack, unpack


class QuantLinear(nn.Linear):
    # buffers registered by __init__ (g_idx for the gptq format only)
    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor
    g_idx: torch.Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool, fmt: str, bits: int, group_size: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        nn.Module.__init__(self)
        if fmt not in FORMATS:
            raise ValueError(f"unknown quantized format {fmt!r}; expected one of {FORMATS}")
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.bits, self.group_size = fmt, bits, group_size
        self.register_parameter("weight", None)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device), requires_grad=False)
        else:
            self.register_parameter("bias", None)
        for name, tensor in self._empty_buffers(device).items():
            self.register_buffer(name, tensor)

    @classmethod
    def from_weight(cls, weight: QuantizedWeight, fmt: str, bias: torch.Tensor | None) -> "QuantLinear":
        out_features, in_features = weight.codes.shape
        dtype = bias.dtype if bias is not None else torch.float32
        module = cls(in_features, out_features, bias is not None, fmt, weight.bits, weight.group_size,
                     dtype=dtype, device=weight.codes.device)
        for name, tensor in pack(fmt, weight).items():
            getattr(module, name).copy_(tensor)
        if bias is not None:
            module.bias.data.copy_(bias.detach())
        return module

    def _empty_buffers(self, device) -> dict[str, torch.Tensor]:
        per_word = 32 // self.bits
        groups = self.in_features // self.group_size
        def int32(*shape):
            return torch.zeros(shape, dtype=torch.int32, device=device)
        scales = torch.zeros(groups, self.out_features, dtype=torch.float16, device=device)
        if self.fmt == "awq":
            return {"qweight": int32(self.in_features, self.out_features // per_word),
                    "qzeros": int32(groups, self.out_features // per_word), "scales": scales}
        return {"qweight": int32(self.in_features // per_word, self.out_features),
                "qzeros": int32(groups, self.out_features // per_word), "scales": scales,
                "g_idx": int32(self.in_features)}

    def quantized_weight(self) -> QuantizedWeight:
        return unpack(self.fmt, dict(self.named_buffers()), self.bits, self.group_size)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight [out, in] that this layer computes with."""
        weight = self.quantized_weight()
        if self.fmt == "gptq" and not torch.equal(self.g_idx, self._sequential_groups()):
            # an act-order checkpoint from another tool: each input channel names its group
            codes = weight.codes.to(dtype)
            return (codes - weight.zeros.to(dtype)[:, self.g_idx]) * weight.scales.to(dtype)[:, self.g_idx]
        return weight.dequantize(dtype)

    def _sequential_groups(self) -> torch.Tensor:
        return torch.arange(self.in_features, dtype=torch.int32, device=self.g_idx.device) // self.group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
            return _DequantizedLinear.apply(x, bias, self)
        return F.linear(x, self.dequantize(x.dtype), bias)

    def _apply(self, fn, recurse=True):
        # .to(dtype)/.half() must not round the float16 scales: the checkpoint and the ONNX graph use these exact
        # values. They follow the module's device only.
        scales = self.scales
        del self._buffers["scales"]
        try:
            result = super()._apply(fn, recurse)
        finally:
            self._buffers["scales"] = scales.to(self.qweight.device)
        return result

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"format={self.fmt}, bits={self.bits}, group_size={self.group_size}")


class _DequantizedLinear(torch.autograd.Function):
    """F.linear over the dequantized weight that keeps no float weight for the backward pass: it dequantizes
    again there, so training adapters on top costs one layer's float weight at a time, not the model's."""

    @staticmethod
    def forward(ctx, x, bias, module):
        ctx.module = module
        return F.linear(x, module.dequantize(x.dtype), bias)

    @staticmethod
    def backward(ctx, grad_output):
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_output @ ctx.module.dequantize(grad_output.dtype)
        if ctx.needs_input_grad[1]:
            grad_bias = grad_output.reshape(-1, grad_output.shape[-1]).sum(0)
        return grad_x, grad_bias, None


def dequantize_linears(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Replace every QuantLinear in `model` with an nn.Linear holding its dequantized weight (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, QuantLinear):
            linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                               device=module.qweight.device, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(module.dequantize(dtype))
                if module.bias is not None:
                    linear.bias.copy_(module.bias)
            set_submodule(model, name, linear)
    return model


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)

