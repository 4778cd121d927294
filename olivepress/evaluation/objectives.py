"""What counts as better: the sub-metrics of an evaluator, the search objectives in priority order, and goals."""

from dataclasses import dataclass

from olivepress.config.sections import EvaluatorConfig, GoalConfig, LMEvaluatorConfig, SubMetricConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import typed_metric


def sub_metric_name(metric: str, sub_type: str) -> str:
    """The name a sub-metric goes by in objectives, footprints and reports."""
    return f"{metric}-{sub_type}"


@dataclass(frozen=True)
class SubMetric:
    name: str  # METRIC-SUBTYPE
    metric: str
    sub_type: str
    higher_is_better: bool
    goal: GoalConfig | None = None

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.higher_is_better else a < b


def sub_metrics(evaluator: EvaluatorConfig) -> list[SubMetric]:
    """Every number the evaluator reports, in the order written (a metric with no sub_types: its main one; an
    LMEvaluator: its tasks' metrics, which lm-evaluation-harness defines)."""
    if isinstance(evaluator, LMEvaluatorConfig):
        from olivepress.evaluation.lm_evaluator import task_sub_metrics

        return task_sub_metrics(evaluator)
    found = []
    for metric in evaluator.metrics:
        kind = typed_metric(metric).metric_kind
        assert kind is not None  # a typed metric declares it
        for sub in metric.sub_types or [SubMetricConfig(name=kind.default_sub_type)]:
            higher = sub.higher_is_better if sub.higher_is_better is not None else kind.higher_is_better
            assert higher is not None  # the typed metric's validator demands one when its kind has no default
            found.append(SubMetric(sub_metric_name(metric.name, sub.name), metric.name, sub.name, higher, sub.goal))
    return found


def objectives(evaluator: EvaluatorConfig, names: list[str] | None = None) -> list[SubMetric]:
    """The sub-metrics to optimize, most important first: `names` if given, else by priority, else all."""
    by_name = {sub.name: sub for sub in sub_metrics(evaluator)}
    if names:
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise OlivepressError(f"no sub-metric named '{unknown[0]}'; the evaluator makes {', '.join(by_name)}")
        return [by_name[name] for name in names]
    ranked = sorted(
        (sub.priority, sub_metric_name(metric.name, sub.name)) for metric in evaluator.metrics
         for sub in metric.sub_types if sub.priority >= 1
    )
    return [by_name[name] for _, name in ranked] or list(by_name.values())


def needs_baseline(evaluator: EvaluatorConfig) -> bool:
    return any(sub.goal is not None and sub.goal.type != "threshold" for sub in sub_metrics(evaluator))


def goal_threshold(sub: SubMetric, baseline: float | None) -> float | None:
    """The value a candidate must reach (at least, or at most when lower is better); None without a goal."""
    goal = sub.goal
    if goal is None:
        return None
    if goal.type == "threshold":
        return goal.value
    if baseline is None:
        raise OlivepressError(f"the {goal.type} goal of {sub.name} needs the input model's value, which is missing")
    amount = goal.value * abs(baseline) / 100 if goal.type.startswith("percent-") else goal.value
    improving = goal.type.endswith("min-improvement")
    up = improving == sub.higher_is_better  # does the threshold lie above the baseline?
    return baseline + amount if up else baseline - amount


def meets(sub: SubMetric, value: float, threshold: float | None) -> bool:
    if threshold is None:
        return True
    return value >= threshold if sub.higher_is_better else value <= threshold
