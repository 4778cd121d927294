"""Running an evaluator on a model: each metric measured once per (model key, metric settings), then cached."""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from olivepress import __version__
from olivepress.config.sections import DataConfig, EvaluatorConfig, MetricConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.cache import EvaluationCache
from olivepress.evaluation.metrics import MeasureContext, metric_types, typed_metric
from olivepress.evaluation.objectives import sub_metric_name, sub_metrics
from olivepress.hardware import Accelerator
from olivepress.hashing import digest, library_versions
from olivepress.log import logger
from olivepress.models.handles import ModelHandle

if TYPE_CHECKING:
    from olivepress.evaluation.generation import Generator

# Part of every evaluation key: bump it whenever a change could change a measured value.
EVALUATION_VERSION = "1"


@dataclass
class Evaluation:
    metrics: dict[str, float]  # by sub-metric name (METRIC-SUBTYPE), in the evaluator's order
    cached: bool  # every metric came from the cache


class Evaluator:
    def __init__(self, config: EvaluatorConfig, data_configs: Mapping[str, DataConfig], accelerator: Accelerator,
                 cache_root: Path, data_fingerprint: Callable[[str], str]):
        self.config = config.model_copy(update={"metrics": [typed_metric(metric) for metric in config.metrics]})
        self.data_configs = data_configs
        self.accelerator = accelerator
        self.cache = EvaluationCache(cache_root)
        self.data_fingerprint = data_fingerprint
        self.sub_metrics = sub_metrics(config)
        self._generator: Generator | None = None  # loaded once per evaluation, by the first metric that generates

    def key(self, metric: MetricConfig, model_key: str) -> str:
        """What can change the numbers: the model, the metric's type and options, its data's content, the
        accelerator, the libraries, and what the metric's type adds (custom: the script's content and the
        sub-metrics asked for)."""
        user_config = metric.user_config
        description = {
            "model": model_key,
            "type": metric.type,
            "user_config": user_config.model_dump(mode="json") if user_config is not None else None,
            "data": self.data_fingerprint(metric.data_config) if metric.data_config else None,
            "accelerator": self.accelerator.as_dict(),
            "libraries": library_versions(),
            "evaluation_version": EVALUATION_VERSION,
            **metric.key_material(),
        }
        return digest(description)

    def evaluate(self, model: ModelHandle, model_key: str) -> Evaluation:
        values: dict[str, float] = {}
        measured = []
        try:
            for metric in self.config.metrics:
                key = self.key(metric, model_key)
                record = self.cache.get(key)
                if record is None:
                    measure_started = time.perf_counter()
                    numbers = self._measure(metric, model)
                    record = {"metric_type": metric.type, "values": numbers, "model_key": model_key,
                              "duration_s": round(time.perf_counter() - measure_started, 3),
                              "olivepress_version": __version__}
                    self.cache.put(key, record)
                    measured.append(metric.name)
                    logger.debug("metric %s on %s: measured in %.2f s", metric.name, model_key[:12], record["duration_s"])
                for sub in self.sub_metrics:
                    if sub.metric == metric.name:
                        values[sub_metric_name(metric.name, sub.sub_type)] = record["values"][sub.sub_type]
        finally:
            self._generator = None  # the model loaded for generation goes with this evaluation
        return Evaluation(values, cached=not measured)

    def _generator_for(self, model: ModelHandle) -> "Generator":
        from olivepress.evaluation.generation import open_generator

        if self._generator is None:
            self._generator = open_generator(model, self.accelerator)
        return self._generator

    def _measure(self, metric: MetricConfig, model: ModelHandle) -> dict[str, float]:
        data = self.data_configs[metric.data_config] if metric.data_config else None
        context = MeasureContext(self.accelerator, lambda: self._generator_for(model))
        try:
            return metric_types().get(metric.type).measure(metric, model, data, context)
        except OlivepressError as error:
            raise OlivepressError(f"metric '{metric.name}': {error}") from error
