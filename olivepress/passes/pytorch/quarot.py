"""QuaRot: Hadamard rotations of a Hugging Face causal LM before weight quantization (Olive's pass of that name,
offline rotations only). The output is a float Hugging Face folder of the same architecture that computes the same
function, with fewer outliers in its linears' weights."""

from typing import TYPE_CHECKING, cast

from pydantic import Field

from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.models.loading import quantization_method, read_model_config, stored_dtype, without_dtype
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.pytorch.merge_adapter import copy_side_files
from olivepress.quantization.rotation import RotateMode, layout_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class QuaRotConfig(PassConfig):
    seed: int = Field(0, description="Seed of the rotations: the random signs of the Hadamard matrices, or the "
                      "random orthogonal matrices.")
    rotate_mode: RotateMode = Field(
        "hadamard", description="hadamard: randomized Hadamard matrices (QuaRot's; hidden and head sizes 2**k times 1 "
        "or a Paley order such as 12, 20, 28, 36, 60); random: random orthogonal matrices, of any size.",
    )


class QuaRot(Pass[HfModel, QuaRotConfig]):
    name = "QuaRot"
    description = ("Rotates the residual stream and the value heads with (Hadamard) orthogonal matrices, RMSNorm "
                   "weights fused into the linears: the same function, fewer weight outliers for RTN/GPTQ/AWQ/int4.")
    Config = QuaRotConfig
    accepts = ("hf",)
    produces = "hf"
    version = "1"

    def run(self, model: HfModel, config: QuaRotConfig, context: PassContext) -> HfModel:
        from torch import nn

        from olivepress.models.loading import load_causal_lm
        from olivepress.quantization.rotation import outlier_ratio, rotate_model

        if model.adapter_path is not None:
            raise OlivepressError(f"QuaRot rotates a base model, but this one has an adapter ({model.adapter_path}); "
                                  "merge it first with a MergeAdapterWeights pass")
        method = quantization_method(model.path)
        if method is not None:
            raise OlivepressError(f"{model.path}: the model is already quantized (quantization_config.quant_method "
                                  f"'{method}'); QuaRot rotates the float model, before quantization")
        model_config = read_model_config(model.path)
        layout_of(model_config.get("model_type"), str(model.path / "config.json"))
        torch_model = cast("PreTrainedModel", load_causal_lm(model.path, stored_dtype(model_config),
                                                             **without_dtype(model.load_kwargs)))
        linears = [module for name, module in torch_model.named_modules()
                   if ".layers." in name and isinstance(module, nn.Linear)]
        before = sum(outlier_ratio(linear.weight) for linear in linears) / len(linears)
        rotate_model(torch_model, config.rotate_mode, config.seed)
        after = sum(outlier_ratio(linear.weight) for linear in linears) / len(linears)
        context.metrics.update(max_abs_to_rms_before=before, max_abs_to_rms_after=after)
        context.logger.info("%s: mean max|w|/rms(w) of the layers' linears %.2f -> %.2f", self.name, before, after)
        torch_model.save_pretrained(context.output_dir)
        copy_side_files(model.path, context.output_dir)
        return HfModel(path=context.output_dir, task=model.task, load_kwargs=model.load_kwargs)
