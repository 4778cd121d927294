"""The metric registry: each metric type pairs its typed config with the function that measures it.

Adding a built-in metric is one line in BUILTIN_METRICS plus its module, which holds a MetricConfig subclass
(declaring `metric_kind`, `description` and a typed `user_config`) and `measure`. A plugin package exposes a
MetricType in the `olivepress.metrics` entry-point group; a document may also name one as 'package.module:attr'.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from olivepress.config.sections import DataConfig, MetricConfig
from olivepress.hardware import Accelerator
from olivepress.models.handles import ModelHandle
from olivepress.plugins import Registry, instance_of, resolve, subclass_of

ENTRY_POINT_GROUP = "olivepress.metrics"

BUILTIN_METRICS = (  # name, config, measure
    ("accuracy", "olivepress.evaluation.accuracy:AccuracyMetricConfig", "olivepress.evaluation.accuracy:measure"),
    ("perplexity", "olivepress.evaluation.perplexity:PerplexityMetricConfig", "olivepress.evaluation.perplexity:measure"),
    ("latency", "olivepress.evaluation.timing:LatencyMetricConfig", "olivepress.evaluation.timing:measure"),
    ("throughput", "olivepress.evaluation.timing:ThroughputMetricConfig", "olivepress.evaluation.timing:measure"),
    ("size_on_disk", "olivepress.evaluation.size:SizeOnDiskMetricConfig", "olivepress.evaluation.size:measure"),
    ("custom", "olivepress.evaluation.custom:CustomMetricConfig", "olivepress.evaluation.custom:measure"),
)


@dataclass
class MeasureContext:
    """What a measurement may use besides the model and the data: the accelerator, and the model opened for
    generation (`generator()`), loaded by the first metric that asks and shared by the evaluation's others."""

    accelerator: Accelerator
    generator: Callable[[], Any]


Measure = Callable[[Any, ModelHandle, DataConfig | None, MeasureContext], dict[str, float]]


@dataclass(frozen=True)
class MetricType:
    """`measure(metric, model, data, context)` returns the metric's numbers by sub-metric name; `metric` is an
    instance of `config`, a MetricConfig subclass that declares `metric_kind`."""

    config: type[MetricConfig]
    measure: Measure

    def __post_init__(self) -> None:
        subclass_of(MetricConfig)(self.config)
        if self.config.metric_kind is None:
            raise TypeError(f"{self.config.__qualname__} declares no metric_kind")


def builtin_metrics() -> Registry[MetricType]:
    registry = Registry("metric type", ENTRY_POINT_GROUP, instance_of(MetricType))
    for name, config, measure in BUILTIN_METRICS:
        registry.add(name, MetricType(resolve(config), resolve(measure)))  # type: ignore[arg-type]
    return registry


@cache
def metric_types() -> Registry[MetricType]:
    """The built-in metric types and every installed plugin's; `register_metric` adds more."""
    return builtin_metrics().with_entry_points()


def register_metric(name: str, config: type[MetricConfig], measure: Measure) -> None:
    """Make a metric type usable by name in documents (as a plugin's entry point does)."""
    metric_types().add(name, MetricType(config, measure))


def typed_metric(metric: MetricConfig | dict[str, Any]) -> MetricConfig:
    """The metric validated as its type's own config (pydantic's ValidationError names what is wrong)."""
    if isinstance(metric, MetricConfig):
        if metric.metric_kind is not None:
            return metric
        metric = metric.model_dump(exclude_unset=True)
    metric = olive_accuracy_shape(metric)
    return metric_types().get(metric["type"]).config.model_validate(metric)


def olive_accuracy_shape(metric: dict[str, Any]) -> dict[str, Any]:
    """Olive's perplexity, `type: accuracy, sub_types: [{name: perplexity}]`, as olivepress's perplexity metric."""
    names = [sub.get("name") for sub in metric.get("sub_types") or [] if isinstance(sub, dict)]
    if metric.get("type") != "accuracy" or names != ["perplexity"]:
        return metric
    return {**{key: value for key, value in metric.items() if key != "backend"}, "type": "perplexity",
            "sub_types": [{key: value for key, value in sub.items() if key != "metric_config"}
                          for sub in metric["sub_types"]]}
