"""The pass chain `olivepress auto-opt` runs, chosen from the model, the device, the execution provider
and the precision.

- A decoder LLM the GenAI builder knows goes through ModelBuilder, and its LoRA adapter (if any) through
  ExtractAdapters, so one exported model serves many adapters.
- Anything else goes through the torch exporter: OnnxConversion, OrtTransformersOptimization where
  onnxruntime has fusions for the model type, then the precision's ONNX quantizer. An adapter is
  merged first there: only the builder's graph has swappable LoRA inputs.
"""

from dataclasses import dataclass, field
from typing import Any

from olivepress.errors import OlivepressError
from olivepress.hardware import DEFAULT_PROVIDERS, EXECUTION_PROVIDERS
from olivepress.models.handles import HfModel
from olivepress.models.loading import quantization_method, read_model_config
from olivepress.passes.onnx.builder_config import BUILDER_ARCHITECTURES, architecture_of

# The providers auto-opt builds for: those the GenAI builder can target.
AUTO_OPT_PROVIDERS = tuple(name for name, provider in EXECUTION_PROVIDERS.items() if provider.builder_name)

# --precision -> the ONNX pass that makes it on the torch-exporter path (fp32 needs none).
ONNX_PRECISION_PASSES = {"int4": "OnnxMatMulNBits", "int8": "OnnxDynamicQuantization", "fp16": "OnnxFloatToFloat16"}


@dataclass(frozen=True)
class ChainStep:
    name: str  # the pass's name in the document
    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    def describe(self) -> str:
        params = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"{self.type}({params})" if params else self.type


@dataclass(frozen=True)
class Chain:
    steps: list[ChainStep]
    notes: list[str]  # what the user should know about the choice (printed with the chain)

    def describe(self) -> str:
        return " -> ".join(step.describe() for step in self.steps)


def choose_provider(device: str, provider: str | None) -> str:
    """The execution provider for the device, checked to be installed in this onnxruntime."""
    import onnxruntime

    provider = provider or DEFAULT_PROVIDERS[device]
    if provider not in AUTO_OPT_PROVIDERS:
        raise OlivepressError(f"--provider {provider}: unknown; known: {', '.join(AUTO_OPT_PROVIDERS)}")
    known = EXECUTION_PROVIDERS[provider]
    if known.device != device:
        raise OlivepressError(f"--provider {provider} runs on {known.device}, but --device is {device}")
    if provider not in onnxruntime.get_available_providers():
        raise OlivepressError(f"--provider {provider} is not installed in this onnxruntime; it comes with {known.package}")
    return provider


def choose_chain(model: HfModel, provider: str, precision: str, use_ort_genai: bool) -> Chain:
    config = read_model_config(model.path)
    architecture = architecture_of(config)
    quantized = quantization_method(model.path)
    if quantized is not None and precision != "int4":
        raise OlivepressError(f"the model is a {quantized} int4 checkpoint; it can only be exported with --precision int4")
    if architecture in BUILDER_ARCHITECTURES and model.task == "text-generation":
        return _builder_chain(model, provider, precision)
    if use_ort_genai:
        raise OlivepressError(
            f"the ONNX Runtime GenAI builder does not support {architecture}; drop --use_ort_genai to export "
            "it with the torch exporter (OnnxConversion)"
        )
    if quantized is not None:
        raise OlivepressError(f"the {quantized} checkpoint of {architecture} can only be exported by the GenAI builder, "
                              "which does not support this architecture")
    return _exporter_chain(model, config, precision)


def _builder_chain(model: HfModel, provider: str, precision: str) -> Chain:
    builder = ChainStep("builder", "ModelBuilder",
                        {"precision": precision, "execution_provider": EXECUTION_PROVIDERS[provider].builder_name})
    if model.adapter_path is None:
        return Chain([builder], [])
    return Chain([builder, ChainStep("extract_adapters", "ExtractAdapters")],
                 ["the adapter stays in float and swappable: model/adapter_weights.onnx_adapter; convert others "
                  "with `olivepress convert-adapters`"])


def _exporter_chain(model: HfModel, config: dict, precision: str) -> Chain:
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    steps, notes = [], []
    if model.adapter_path is not None:
        steps.append(ChainStep("merge", "MergeAdapterWeights"))
        notes.append("the adapter is merged into the weights: swappable adapters need a model the GenAI builder supports")
    steps.append(ChainStep("conversion", "OnnxConversion"))
    if config.get("model_type") in MODEL_TYPES:
        steps.append(ChainStep("optimize", "OrtTransformersOptimization"))
    if precision in ONNX_PRECISION_PASSES:
        steps.append(ChainStep("precision", ONNX_PRECISION_PASSES[precision]))
    if model.task == "text-generation":
        notes.append("the exported graph has no KV cache and no genai_config.json: run it with onnxruntime, "
                     "not `olivepress generate`")
    return Chain(steps, notes)
