"""Size on disk: the bytes of every file in the model's folders (the model and, if any, its adapter)."""

from typing import ClassVar

from pydantic import Field

from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.evaluation.metrics import MeasureContext
from olivepress.hashing import list_files
from olivepress.models.handles import ModelHandle


class SizeOnDiskMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(("bytes", "mb"), "bytes", False, False)
    description: ClassVar[str] = "The bytes of every file of the model's folders."
    user_config: None = Field(None, description="Size on disk takes no options.")


def measure(metric: SizeOnDiskMetricConfig, model: ModelHandle, data_config: DataConfig | None,
            context: MeasureContext) -> dict[str, float]:
    total = sum((folder / rel).stat().st_size for folder in model.folders().values() for rel in list_files(folder))
    return {"bytes": float(total), "mb": total / 1e6}
