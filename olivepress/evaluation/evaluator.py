"""Running an evaluator on a model: each metric measured once per (model key, metric settings), then cached."""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from olivepress import __version__
from olivepress.config.sections import DataConfig, EvaluatorConfig, MetricConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.cache import EvaluationCache
from olivepress.evaluation.objectives import sub_metrics
from olivepress.evaluation.subtypes import sub_metric_name
from olivepress.hardware import Accelerator
from olivepress.hashing import digest, library_versions, sha256_file
from olivepress.log import logger
from olivepress.models.handles import ModelHandle

# Part of every evaluation key: bump it whenever a change could change a measured value.
EVALUATION_VERSION = "1"


@dataclass
class Evaluation:
    metrics: dict[str, float]  # by sub-metric name (METRIC-SUBTYPE), in the evaluator's order
    cached: bool  # every metric came from the cache


class Evaluator:
    def __init__(self, config: EvaluatorConfig, data_configs: Mapping[str, DataConfig], accelerator: Accelerator,
                 cache_root: Path, data_fingerprint: Callable[[str], str]):
        self.config = config
        self.data_configs = data_configs
        self.accelerator = accelerator
        self.cache = EvaluationCache(cache_root)
        self.data_fingerprint = data_fingerprint
        self.sub_metrics = sub_metrics(config)
        self._generator = None  # loaded once per evaluation, by the first metric that generates

    def key(self, metric: MetricConfig, model_key: str) -> str:
        """What can change the numbers: the model, the metric's type and options, its data's content, the
        accelerator, the libraries, and for custom metrics the script's content and the sub-metrics asked for."""
        user_config = getattr(metric, "user_config", None)
        description = {
            "model": model_key,
            "type": metric.type,
            "user_config": user_config.model_dump(mode="json") if user_config is not None else None,
            "data": self.data_fingerprint(metric.data_config) if metric.data_config else None,
            "accelerator": self.accelerator.as_dict(),
            "libraries": library_versions(),
            "evaluation_version": EVALUATION_VERSION,
        }
        if metric.type == "custom":
            from olivepress.evaluation.custom import script_file

            script = script_file(metric.user_config)
            description["script"] = sha256_file(script) if script is not None and script.is_file() else None
            description["sub_types"] = [sub.name for sub in metric.sub_types]
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

    def _generator_for(self, model: ModelHandle):
        from olivepress.evaluation.generation import open_generator

        if self._generator is None:
            self._generator = open_generator(model, self.accelerator)
        return self._generator

    def _measure(self, metric: MetricConfig, model: ModelHandle) -> dict[str, float]:
        data = self.data_configs[metric.data_config] if metric.data_config else None
        try:
            if metric.type == "perplexity":
                from olivepress.evaluation import perplexity

                return perplexity.measure(model, data, self.accelerator)
            if metric.type == "accuracy":
                from olivepress.evaluation import accuracy

                return accuracy.measure(self._generator_for(model), metric.user_config, data)
            if metric.type in ("latency", "throughput"):
                from olivepress.evaluation import timing

                return timing.measure(metric.type, self._generator_for(model), metric.user_config, data)
            if metric.type == "size_on_disk":
                from olivepress.evaluation import size

                return size.measure(model)
            from olivepress.evaluation import custom

            return custom.measure(model, metric.user_config, data, [sub.name for sub in metric.sub_types])
        except OlivepressError as error:
            raise OlivepressError(f"metric '{metric.name}': {error}") from error
