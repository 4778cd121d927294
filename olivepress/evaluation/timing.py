"""Latency (seconds per request) and throughput (generated tokens per second) of exactly max_new_tokens tokens."""

from typing import ClassVar

from pydantic import Field
from tqdm import tqdm

from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.evaluation.generation import GenerationUserConfig, percentiles
from olivepress.evaluation.metrics import MeasureContext
from olivepress.models.handles import ModelHandle

PERCENTILES = ("avg", "min", "max", "p50", "p90", "p95", "p99")


class TimingUserConfig(GenerationUserConfig):
    warmup_num: int = Field(1, ge=0, description="Untimed generations first.")
    repeat_test_num: int = Field(10, gt=0, description="Timed generations, cycling through the prompts.")


class LatencyMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(PERCENTILES, "avg", False, True)
    description: ClassVar[str] = "Seconds per request: the prompt plus exactly max_new_tokens tokens."
    user_config: TimingUserConfig = Field(default_factory=TimingUserConfig)


class ThroughputMetricConfig(LatencyMetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(PERCENTILES, "avg", True, True)
    description: ClassVar[str] = "Generated tokens per second, per request."


def measure(metric: LatencyMetricConfig, model: ModelHandle, data_config: DataConfig,
            context: MeasureContext) -> dict[str, float]:
    """Latency or throughput, by the metric's class. Prompts cycle through the data's rows; warm-up runs are
    not timed."""
    from olivepress.evaluation.data import evaluation_rows, prompts

    generator, user = context.generator(), metric.user_config
    latency = not isinstance(metric, ThroughputMetricConfig)
    rows = evaluation_rows(data_config)
    ids = [generator.prompt_ids(text, user.use_chat_template)
           for text in prompts(data_config, rows, user.prompt_template, generator.tokenizer)]
    for number in range(user.warmup_num):
        generator.generate(ids[number % len(ids)], user.max_new_tokens, exact=True)
    runs = [generator.generate(ids[number % len(ids)], user.max_new_tokens, exact=True)
            for number in tqdm(range(user.repeat_test_num), desc="latency" if latency else "throughput", unit="request",
                               disable=None, leave=False)]
    if latency:
        return percentiles([run.seconds for run in runs])
    total = sum(run.new_tokens for run in runs) / sum(run.seconds for run in runs)
    return percentiles([run.new_tokens / run.seconds for run in runs], average=total)
