"""Running an evaluator on a model: each metric (an LMEvaluator's tasks: together) measured once per (model key,
settings), then cached."""

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress import __version__
from olivepress.config.sections import DataConfig, EvaluatorConfig, LMEvaluatorConfig, MetricConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.cache import EvaluationCache
from olivepress.evaluation.metrics import MeasureContext, metric_types, typed_metric
from olivepress.evaluation.objectives import sub_metrics
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
        self.config = config if isinstance(config, LMEvaluatorConfig) else \
            config.model_copy(update={"metrics": [typed_metric(metric) for metric in config.metrics]})
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

    def tasks_key(self, config: LMEvaluatorConfig, model_key: str) -> str:
        """An LMEvaluator's: the model, its settings, its local task definitions' content, the accelerator and the
        libraries (lm_eval among them)."""
        from olivepress.evaluation.lm_evaluator import key_material

        return digest({"model": model_key, "type": config.type, "settings": config.model_dump(mode="json"),
                       "accelerator": self.accelerator.as_dict(), "libraries": library_versions(),
                       "evaluation_version": EVALUATION_VERSION, **key_material(config)})

    def evaluate(self, model: ModelHandle, model_key: str) -> Evaluation:
        numbers: dict[str, dict[str, float]] = {}  # by metric (an LMEvaluator's: task) name, then sub-metric
        measured = []
        try:
            for name, kind, key, measure, by_metric in self._measurements(model, model_key):
                record = self.cache.get(key)
                if record is None:
                    measure_started = time.perf_counter()
                    record = {"metric_type": kind, "values": measure(), "model_key": model_key,
                              "duration_s": round(time.perf_counter() - measure_started, 3),
                              "olivepress_version": __version__}
                    self.cache.put(key, record)
                    measured.append(name)
                    logger.debug("metric %s on %s: measured in %.2f s", name, model_key[:12], record["duration_s"])
                numbers.update(record["values"] if by_metric else {name: record["values"]})
        finally:
            self._generator = None  # the model loaded for generation goes with this evaluation
        values = {}
        for sub in self.sub_metrics:
            if sub.sub_type not in numbers.get(sub.metric, {}):
                raise OlivepressError(f"{sub.metric} reported no {sub.sub_type}")
            values[sub.name] = numbers[sub.metric][sub.sub_type]
        return Evaluation(values, cached=not measured)

    def _measurements(self, model: ModelHandle, model_key: str) -> Iterator[
            tuple[str, str, str, Callable[[], dict[str, Any]], bool]]:
        """(name, type, cache key, measure, whether its numbers are by metric name) of each measurement: an
        LMEvaluator's tasks run together, as lm_eval runs them; each metric of other evaluators on its own."""
        if isinstance(self.config, LMEvaluatorConfig):
            from olivepress.evaluation.lm_evaluator import measure_tasks

            config = self.config
            yield ("tasks", config.type, self.tasks_key(config, model_key),
                   lambda: measure_tasks(config, model, self.accelerator), True)
            return
        for metric in self.config.metrics:
            yield metric.name, metric.type, self.key(metric, model_key), partial(self._measure, metric, model), False

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
