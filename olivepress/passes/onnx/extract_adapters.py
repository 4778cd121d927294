"""ExtractAdapters: LoRA weights of an exported model become swappable inputs plus an adapter file."""

from typing import Literal

from pydantic import Field, field_validator

from olivepress.models.handles import OnnxModel
from olivepress.models.onnx_adapters import (
    ADAPTER_FILE_SUFFIX,
    DEFAULT_ADAPTER_FILE,
    write_adapter_file,
)
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.lora_graph import extract_lora_inputs
from olivepress.passes.onnx.model_files import (
    ExternalDataOptions,
    copy_side_files,
    load_onnx,
    save_onnx,
)


class ExtractAdaptersConfig(ExternalDataOptions):
    adapter_type: Literal["lora", "dora", "loha"] = Field(
        "lora", description="The kind of adapter in the graph; olivepress's adapter files hold LoRA weights."
    )
    adapter_file_name: str = Field(
        DEFAULT_ADAPTER_FILE, description="Name of the adapter file written beside model.onnx."
    )
    dynamic_lora_r: bool = Field(
        True, description="Give each LoRA input a symbolic rank axis, so adapters of any rank fit the model."
    )
    optional_inputs: bool = Field(
        True, description="Keep an empty default for each LoRA input: without an adapter the model is the base model."
    )

    @field_validator("adapter_type")
    @classmethod
    def _lora_only(cls, value: str) -> str:
        if value != "lora":
            raise ValueError(f"'{value}' adapters cannot be extracted: olivepress's adapter files hold LoRA weights only "
                             "(Olive 0.9 also extracts dora and loha); merge the adapter with MergeAdapterWeights instead")
        return value

    @field_validator("adapter_file_name")
    @classmethod
    def _adapter_suffix(cls, value: str) -> str:
        if not value.endswith(ADAPTER_FILE_SUFFIX) or "/" in value:
            raise ValueError(f"must be a file name ending in {ADAPTER_FILE_SUFFIX}")
        return value


class ExtractAdapters(Pass[OnnxModel, ExtractAdaptersConfig]):
    name = "ExtractAdapters"
    description = "Turn the LoRA weights of an ONNX model into overridable inputs and write them as an .onnx_adapter file."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = ExtractAdaptersConfig

    def run(self, model: OnnxModel, config: ExtractAdaptersConfig, context: PassContext) -> OnnxModel:
        proto = load_onnx(model)
        weights = extract_lora_inputs(proto, dynamic_rank=config.dynamic_lora_r, optional=config.optional_inputs)
        save_onnx(proto, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir, skip=frozenset({config.adapter_file_name}))
        write_adapter_file(context.output_dir / config.adapter_file_name, weights)
        context.metrics["adapter_weights"] = len(weights)
        context.metrics["adapter_parameters"] = sum(int(array.size) for array in weights.values())
        adapter_name = config.adapter_file_name.removesuffix(ADAPTER_FILE_SUFFIX)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name,
                         adapters={**model.adapters, adapter_name: config.adapter_file_name})
