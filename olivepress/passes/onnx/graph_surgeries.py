"""GraphSurgeries: Olive's named ONNX graph rewrites, applied in the order the document lists them."""

from typing import Annotated, Any

from pydantic import Field, field_validator

from olivepress.config.base import did_you_mean
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files, load_onnx, save_onnx
from olivepress.passes.onnx.surgeons import (
    SURGEONS,
    AttentionMaskToSequenceLengths,
    MatMulAddToGemm,
    PowReduceSumPowDiv2LpNorm,
    RemoveRopeMultiCache,
    ReplaceAttentionMaskValue,
    ReplaceErfWithTanh,
    SimplifiedLayerNormToL2Norm,
    TieWordEmbeddings,
)

AnySurgeon = Annotated[
    TieWordEmbeddings | MatMulAddToGemm | ReplaceAttentionMaskValue | SimplifiedLayerNormToL2Norm
    | AttentionMaskToSequenceLengths | RemoveRopeMultiCache | PowReduceSumPowDiv2LpNorm | ReplaceErfWithTanh,
    Field(discriminator="surgeon"),
]


class GraphSurgeriesConfig(ExternalDataOptions):
    surgeries: list[AnySurgeon] = Field(
        min_length=1, description="The surgeons to apply, in order, each {surgeon: Name, ...its parameters}."
    )

    @field_validator("surgeries", mode="before")
    @classmethod
    def _known_surgeons(cls, value: Any) -> Any:
        for position, entry in enumerate(value if isinstance(value, list) else []):
            name = entry.get("surgeon") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                raise ValueError(f"[{position}] needs a 'surgeon' naming one of {', '.join(SURGEONS)}")
            if name not in SURGEONS:
                raise ValueError(f"[{position}]: unknown surgeon '{name}'{did_you_mean(name, list(SURGEONS))}; "
                                 f"olivepress has {', '.join(SURGEONS)}")
        return value


class GraphSurgeries(Pass[OnnxModel, GraphSurgeriesConfig]):
    name = "GraphSurgeries"
    description = "Apply Olive's named graph rewrites (TieWordEmbeddings, MatMulAddToGemm, ...) to an ONNX model."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = GraphSurgeriesConfig

    def run(self, model: OnnxModel, config: GraphSurgeriesConfig, context: PassContext) -> OnnxModel:
        proto = load_onnx(model)
        for surgeon in config.surgeries:
            changed = surgeon.apply(proto)
            context.metrics[surgeon.surgeon] = context.metrics.get(surgeon.surgeon, 0) + changed
            if not changed:
                context.logger.info("GraphSurgeries: %s found nothing to change", surgeon.surgeon)
        save_onnx(proto, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)
