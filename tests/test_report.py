"""The pareto frontier, the best candidate by priority, and report.md / pareto.png, on planted results."""

import struct

from olivepress.config.sections import GoalConfig
from olivepress.engine.report import (
    best_of,
    dominates,
    pareto_front,
    report_text,
    summary_lines,
    write_report,
)
from olivepress.engine.search.candidate import CandidateResult
from olivepress.engine.search.driver import SearchResult
from olivepress.evaluation.objectives import SubMetric

ACC = SubMetric("acc-accuracy_score", "acc", "accuracy_score", True, GoalConfig(type="threshold", value=0.5))
SIZE = SubMetric("size-mb", "size", "mb", False)


def result(number: int, accuracy: float | None, size: float | None = None, **knobs) -> CandidateResult:
    outcome = CandidateResult(number, 0, {"builder": knobs})
    if accuracy is None:
        outcome.error = "pass 'builder' failed: RuntimeError: planted"
    else:
        outcome.metrics = {ACC.name: accuracy, SIZE.name: size}
        outcome.goals_met = accuracy >= 0.5
    return outcome


PLANTED = [result(1, 0.6, 100, block_size=32), result(2, 0.6, 80, block_size=64), result(3, 0.7, 120, block_size=128),
           result(4, 0.5, 80, block_size=256), result(5, 0.4, 50, block_size=16), result(6, 0.7, 120, block_size=128)]


def test_dominance_and_the_pareto_frontier_respect_each_direction():
    assert dominates(PLANTED[1].metrics, PLANTED[0].metrics, [ACC, SIZE])  # same accuracy, smaller
    assert not dominates(PLANTED[0].metrics, PLANTED[1].metrics, [ACC, SIZE])
    assert not dominates(PLANTED[2].metrics, PLANTED[5].metrics, [ACC, SIZE])  # equal: neither dominates
    front = pareto_front(PLANTED, [ACC, SIZE])
    assert [r.number for r in front] == [2, 3, 5, 6]
    assert [r.number for r in pareto_front(PLANTED, [SIZE])] == [5]


def test_the_best_follows_the_objectives_in_priority_order_then_the_candidate_number():
    assert best_of(PLANTED, [ACC, SIZE]).number == 3  # 3 and 6 tie; the earlier wins
    assert best_of(PLANTED, [SIZE, ACC]).number == 5
    assert best_of(PLANTED[:4], [SIZE, ACC]).number == 2  # 2 and 4 share the size; 2 is more accurate


def planted_search() -> SearchResult:
    candidates = [*PLANTED[:3], result(7, None, block_size=8)]
    for outcome in candidates[1:3]:
        outcome.pareto = True
    search = SearchResult("sequential", "joint", {}, [ACC, SIZE], [ACC, SIZE], {ACC.name: 0.5, SIZE.name: None},
                          {ACC.name: 0.3, SIZE.name: 500}, candidates, candidates[2], True, "every point tried", 12.5)
    return search


def test_the_report_names_the_best_every_candidate_and_each_failure(tmp_path):
    text = report_text(planted_search(), "my-workflow")
    assert text.startswith("# Search report: my-workflow\n")
    assert ("4 candidates in 12.5 s (sequential sampler, joint order; every point tried): 3 succeeded, 1 failed, "
            "3 met every goal.") in text
    assert ("**Best: candidate 3** (builder.block_size=128): acc-accuracy_score 0.7, size-mb 120. "
            "It is the model in `model/`.") in text
    assert "| acc-accuracy_score (objective 1) | higher | threshold 0.5 | 0.5 | 0.3 |" in text
    assert "| 3 ★ | builder.block_size=128 | 0.7 | 120 | met | yes | 0 ran, 0 cached | 0.0 |" in text
    assert "| 7 | builder.block_size=8 |  |  | failed |  | 0 ran, 0 cached | 0.0 |" in text
    assert "- candidate 7 (builder.block_size=8): pass 'builder' failed: RuntimeError: planted" in text


def test_the_plot_is_a_png_and_the_summary_marks_the_frontier(tmp_path):
    report, plot = write_report(tmp_path, planted_search(), "w")
    assert report.read_text().startswith("# Search report: w")
    header = plot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (700, 500)
    lines = summary_lines(planted_search())
    assert lines[0] == "search: 4 candidates in 12.5 s (sequential, joint; every point tried): 3 succeeded, 1 failed"
    assert lines[1] == "  input model: acc-accuracy_score 0.3  size-mb 500"
    assert "  #3 builder.block_size=128: acc-accuracy_score 0.7  size-mb 120 [pareto] [best]" in lines
    assert "  #7 builder.block_size=8: failed: pass 'builder' failed: RuntimeError: planted" in lines
