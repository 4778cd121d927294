"""Devices and ONNX Runtime execution providers: the one table everyone reads, and the accelerator a run
targets."""

from dataclasses import dataclass

DEVICES = ("cpu", "gpu", "npu")


@dataclass(frozen=True)
class ExecutionProvider:
    name: str  # as onnxruntime spells it, e.g. CUDAExecutionProvider
    device: str  # one of DEVICES
    package: str  # where it comes from when the installed onnxruntime lacks it
    builder_name: str | None = None  # the GenAI builder's --execution_provider; None: the builder cannot target it
    genai_check: str | None = None  # the onnxruntime_genai function that says whether this build has it


EXECUTION_PROVIDERS = {provider.name: provider for provider in (
    ExecutionProvider("CPUExecutionProvider", "cpu", "onnxruntime", "cpu"),
    ExecutionProvider("CUDAExecutionProvider", "gpu",
                      "onnxruntime-gpu and onnxruntime-genai-cuda (pip install 'olivepress[cuda]')", "cuda",
                      "is_cuda_available"),
    ExecutionProvider("DmlExecutionProvider", "gpu", "onnxruntime-directml and onnxruntime-genai-directml (Windows)",
                      "dml", "is_dml_available"),
    ExecutionProvider("WebGpuExecutionProvider", "gpu", "an onnxruntime build with WebGPU", "webgpu"),
    ExecutionProvider("NvTensorRTRTXExecutionProvider", "gpu", "onnxruntime-trt-rtx", "NvTensorRtRtx"),
    ExecutionProvider("QNNExecutionProvider", "npu", "onnxruntime-qnn"),
    ExecutionProvider("VitisAIExecutionProvider", "npu", "onnxruntime-vitisai"),
)}

DEFAULT_PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider", "npu": "QNNExecutionProvider"}


def device_of(provider: str) -> str:
    """The device an execution provider runs on; providers not in the table run on a GPU."""
    known = EXECUTION_PROVIDERS.get(provider)
    return known.device if known else "gpu"


def provider_of_builder_name(builder_name: str) -> ExecutionProvider | None:
    """The provider that the GenAI builder (and genai_config.json) calls `builder_name`."""
    return next((p for p in EXECUTION_PROVIDERS.values() if p.builder_name == builder_name), None)


@dataclass(frozen=True)
class Accelerator:
    device: str  # one of DEVICES
    execution_provider: str  # e.g. CPUExecutionProvider

    def as_dict(self) -> dict[str, str]:
        return {"device": self.device, "execution_provider": self.execution_provider}


def resolve_accelerator(device: str, execution_providers: list[str] | None) -> Accelerator:
    """The accelerator a system's first accelerator entry names: its first provider, else the device's default."""
    providers = execution_providers or [DEFAULT_PROVIDERS[device]]
    return Accelerator(device=device, execution_provider=providers[0])
