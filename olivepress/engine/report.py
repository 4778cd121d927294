"""Results of a search: the pareto frontier, the best model by priority, and report.md with pareto.png."""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress.evaluation.objectives import SubMetric

if TYPE_CHECKING:
    from olivepress.engine.search.candidate import CandidateResult
    from olivepress.engine.search.driver import SearchResult

REPORT_FILE = "report.md"
PLOT_FILE = "pareto.png"


def dominates(a: dict[str, float], b: dict[str, float], objectives: Sequence[SubMetric]) -> bool:
    """`a` is at least as good as `b` on every objective and better on one."""
    better = False
    for objective in objectives:
        if objective.better(b[objective.name], a[objective.name]):
            return False
        better = better or objective.better(a[objective.name], b[objective.name])
    return better


def pareto_front(results: Sequence["CandidateResult"], objectives: Sequence[SubMetric]) -> list["CandidateResult"]:
    """The results no other result dominates, in their order."""
    return [result for result in results
            if not any(dominates(other.metrics, result.metrics, objectives) for other in results)]


def rank_key(result: "CandidateResult", objectives: Sequence[SubMetric]) -> tuple:
    """Sorts the best first: by the first objective, ties by the next, then by candidate number."""
    return (*(-result.metrics[o.name] if o.higher_is_better else result.metrics[o.name] for o in objectives),
            result.number)


def best_of(results: Sequence["CandidateResult"], objectives: Sequence[SubMetric]) -> "CandidateResult":
    return min(results, key=lambda result: rank_key(result, objectives))


# ------------------------------------------------------------------ summary and report.md


def summary_lines(search: "SearchResult") -> list[str]:
    """What `olivepress run` prints: a line per candidate, the input model's numbers, and the best."""
    candidates = search.candidates
    failed = sum(not c.succeeded for c in candidates)
    lines = [f"search: {len(candidates)} candidate{'s' if len(candidates) != 1 else ''} in {search.duration_s:.1f} s "
             f"({search.sampler}, {search.execution_order}; {search.stop_reason}): "
             f"{len(candidates) - failed} succeeded, {failed} failed"]
    if search.baseline is not None:
        lines.append("  input model: " + _numbers(search.baseline))
    for c in candidates:
        choice = describe_choice(c.choice) or "the passes as written"
        if not c.succeeded:
            lines.append(f"  #{c.number} {choice}: failed: {c.error}")
            continue
        marks = "".join(mark for mark, on in ((" [goals missed]", _has_goals(search) and not c.goals_met),
                                              (" [pareto]", c.pareto), (" [best]", c is search.best)) if on)
        cached = " (cached)" if c.evaluation_cached and all(step.cache == "hit" for step in c.steps) else ""
        lines.append(f"  #{c.number} {choice}: {_numbers(c.metrics)}{marks}{cached}")
    if _has_goals(search) and not search.goals_met_by_any:
        lines.append("warning: no candidate met every goal; the best is the best of those that succeeded")
    return lines


def _numbers(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {number(value)}" for name, value in metrics.items())


def _has_goals(search: "SearchResult") -> bool:
    return any(sub.goal is not None for sub in search.sub_metrics)


def write_report(folder: Path, search: "SearchResult", workflow_id: str) -> list[Path]:
    """report.md and pareto.png in `folder`; returns both paths."""
    plot = folder / PLOT_FILE
    plot_pareto(plot, search)
    report = folder / REPORT_FILE
    report.write_text(report_text(search, workflow_id), encoding="utf-8")
    return [report, plot]


def report_text(search: "SearchResult", workflow_id: str) -> str:
    candidates = search.candidates
    succeeded = [c for c in candidates if c.succeeded]
    best = search.require_best()
    lines = [
        f"# Search report: {workflow_id}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}. {len(candidates)} candidate{'s' if len(candidates) != 1 else ''} in "
        f"{search.duration_s:.1f} s ({search.sampler} sampler, {search.execution_order} order; {search.stop_reason}): "
        f"{len(succeeded)} succeeded, {len(candidates) - len(succeeded)} failed"
        + (f", {sum(c.goals_met for c in succeeded)} met every goal." if _has_goals(search) else "."),
        "",
        f"**Best: candidate {best.number}** ({describe_choice(best.choice) or 'the passes as written'}): "
        + ", ".join(f"{name} {number(value)}" for name, value in best.metrics.items())
        + ". It is the model in `model/`.",
    ]
    if _has_goals(search) and not search.goals_met_by_any:
        lines += ["", "No candidate met every goal; the best is chosen among all that succeeded."]
    lines += ["", "## Objectives", "", "| sub-metric | better | goal | threshold | input model |", "|---|---|---|---|---|"]
    for sub in search.sub_metrics:
        rank = next((str(i + 1) for i, o in enumerate(search.objectives) if o.name == sub.name), None)
        name = f"{sub.name} (objective {rank})" if rank else sub.name
        goal = f"{sub.goal.type} {number(sub.goal.value)}" if sub.goal else ""
        threshold = search.thresholds.get(sub.name)
        baseline = (search.baseline or {}).get(sub.name)
        lines.append(f"| {name} | {'higher' if sub.higher_is_better else 'lower'} | {goal} | "
                     f"{'' if threshold is None else number(threshold)} | {'' if baseline is None else number(baseline)} |")
    lines += ["", f"![pareto frontier]({PLOT_FILE})", "", "## Candidates", ""]
    names = [sub.name for sub in search.sub_metrics]
    lines.append("| # | choice | " + " | ".join(names) + " | goals | pareto | passes | seconds |")
    lines.append("|---" * (len(names) + 6) + "|")
    for c in candidates:
        marker = " ★" if c is best else ""
        if c.succeeded:
            values = [number(c.metrics[name]) for name in names]
            goals = ("met" if c.goals_met else "missed") if _has_goals(search) else ""
            pareto = "yes" if c.pareto else ""
        else:
            values, goals, pareto = ["" for _ in names], "failed", ""
        ran = sum(step.cache == "miss" for step in c.steps)
        passes = f"{ran} ran, {len(c.steps) - ran} cached"
        lines.append(f"| {c.number}{marker} | {describe_choice(c.choice)} | " + " | ".join(values)
                     + f" | {goals} | {pareto} | {passes} | {c.duration_s:.1f} |")
    failed = [c for c in candidates if not c.succeeded]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- candidate {c.number} ({describe_choice(c.choice)}): {c.error}" for c in failed]
    return "\n".join(lines) + "\n"


def describe_choice(choice: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{step}.{param}={value}" for step, params in choice.items() for param, value in params.items())


def number(value: float) -> str:
    """4 significant digits, without exponent notation for large values."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


# ------------------------------------------------------------------ pareto.png


def plot_pareto(path: Path, search: "SearchResult") -> None:
    """The first two objectives against each other (one objective: against the candidate number), the
    frontier joined up, goal thresholds dashed, the best starred. Drawn without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objectives = search.objectives
    shown = [c for c in search.candidates if c.succeeded]
    figure = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    y_objective = objectives[1] if len(objectives) >= 2 else objectives[0]
    y_of = lambda c: c.metrics[y_objective.name]  # noqa: E731
    if len(objectives) >= 2:
        x_of, x_label = (lambda c: c.metrics[objectives[0].name]), _axis_label(objectives[0])
        _threshold_line(axes.axvline, search.thresholds.get(objectives[0].name))
    else:
        x_of, x_label = (lambda c: c.number), "candidate"
    _threshold_line(axes.axhline, search.thresholds.get(y_objective.name))
    others = "goals met" if _has_goals(search) else "candidates"
    groups = (("goals missed", "#bbbbbb", [c for c in shown if not c.goals_met and not c.pareto]),
              (others, "#4c78a8", [c for c in shown if c.goals_met and not c.pareto]),
              ("pareto frontier", "#f58518", [c for c in shown if c.pareto]))
    for label, color, members in groups:
        if members:
            axes.scatter([x_of(c) for c in members], [y_of(c) for c in members], color=color, label=label, zorder=3)
    front = sorted((c for c in shown if c.pareto), key=x_of)
    if len(objectives) >= 2 and len(front) > 1:
        axes.plot([x_of(c) for c in front], [y_of(c) for c in front], color="#f58518", zorder=2)
    baseline = search.baseline or {}
    if len(objectives) >= 2 and all(o.name in baseline for o in objectives[:2]):
        axes.scatter([baseline[objectives[0].name]], [baseline[y_objective.name]], marker="x", s=80, color="black",
                     label="input model", zorder=3)
    best = search.require_best()
    axes.scatter([x_of(best)], [y_of(best)], marker="*", s=300, color="#e45756", label=f"best (#{best.number})", zorder=4)
    for c in shown:
        axes.annotate(str(c.number), (x_of(c), y_of(c)), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set_xlabel(x_label)
    axes.set_ylabel(_axis_label(y_objective))
    axes.set_title(f"{len(shown)} candidates" + (f" ({len(objectives)} objectives; the first two shown)"
                                                 if len(objectives) > 2 else ""))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def _axis_label(objective: SubMetric) -> str:
    return f"{objective.name} ({'higher' if objective.higher_is_better else 'lower'} is better)"


def _threshold_line(draw, threshold: float | None) -> None:
    if threshold is not None:
        draw(threshold, color="#54a24b", linestyle="--", linewidth=1, label="goal")
