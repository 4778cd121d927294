"""What each metric type reports: its sub-metric names, the default one, and which direction is better.

Imported when a document is loaded, so it depends on nothing heavy.
"""

from dataclasses import dataclass

PERCENTILES = ("avg", "min", "max", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class MetricKind:
    sub_types: tuple[str, ...]  # empty: any name (custom metrics)
    default_sub_type: str | None
    higher_is_better: bool | None  # None: the document must say
    needs_data: bool


METRIC_KINDS = {
    "accuracy": MetricKind(("accuracy_score", "exact_match"), "accuracy_score", True, True),
    "perplexity": MetricKind(("perplexity",), "perplexity", False, True),
    "latency": MetricKind(PERCENTILES, "avg", False, True),
    "throughput": MetricKind(PERCENTILES, "avg", True, True),
    "size_on_disk": MetricKind(("bytes", "mb"), "bytes", False, False),
    "custom": MetricKind((), None, None, False),
}


def sub_metric_name(metric: str, sub_type: str) -> str:
    """The name a sub-metric goes by in objectives, footprints and reports."""
    return f"{metric}-{sub_type}"
