"""MergeAdapterWeights: fold a PEFT adapter into its base model and save a plain Hugging Face folder."""

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.models.loading import (
    TORCH_DTYPES,
    quantization_method,
    read_model_config,
    stored_dtype,
    torch_dtype,
    without_dtype,
)
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.pytorch.lora import peft_warnings_filtered

# Files of a base folder that save_pretrained writes anew (config, weights); everything else (tokenizer,
# chat template, generation config) is copied unchanged.
WRITTEN_BY_SAVE = ("config.json",)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json")


class MergeAdapterWeightsConfig(PassConfig):
    torch_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Dtype of the saved weights (float32, bfloat16, float16); default the base checkpoint's. "
        "The merge itself runs in float32."
    )


class MergeAdapterWeights(Pass[HfModel, MergeAdapterWeightsConfig]):
    name = "MergeAdapterWeights"
    description = "Merge a LoRA/DoRA adapter into the base weights; the output is a plain Hugging Face folder."
    version = "1"
    accepts = ("hf",)
    produces = "hf"
    Config = MergeAdapterWeightsConfig

    def run(self, model: HfModel, config: MergeAdapterWeightsConfig, context: PassContext) -> HfModel:
        from peft import PeftModel

        from olivepress.models.loading import load_causal_lm

        if model.adapter_path is None:
            raise OlivepressError("the input model has no adapter_path to merge")
        method = quantization_method(model.path)
        if method is not None:
            raise OlivepressError(
                f"cannot merge an adapter into a quantized base ({method}, {model.path}); merge into the float "
                "model and quantize afterwards"
            )
        stored = config.torch_dtype or stored_dtype(read_model_config(model.path))
        saved_dtype = torch_dtype(stored if stored in TORCH_DTYPES else "float32")
        base = load_causal_lm(model.path, "float32", **without_dtype(model.load_kwargs))
        with peft_warnings_filtered():
            merged = PeftModel.from_pretrained(base, model.adapter_path).merge_and_unload()
        merged.to(saved_dtype).save_pretrained(context.output_dir)
        copy_side_files(model.path, context.output_dir)
        context.logger.info("%s: merged %s into %s", self.name, model.adapter_path, context.output_dir)
        return HfModel(path=context.output_dir, task=model.task, load_kwargs=model.load_kwargs)



def copy_side_files(base: Path, output: Path) -> None:
    """Copy what save_pretrained does not write (tokenizer, chat template, generation files) from base to output."""
    for file in sorted(base.iterdir()):
        if file.is_file() and file.name not in WRITTEN_BY_SAVE and not file.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(file, output / file.name)
