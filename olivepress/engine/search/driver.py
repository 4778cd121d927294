"""The search loop: the execution order's stages, a sampler per stage, candidates on an executor, and the
goals, pareto frontier and best candidate of each stage."""

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from olivepress.config.sections import SearchStrategyConfig
from olivepress.engine.report import best_of, describe_choice, number, pareto_front
from olivepress.engine.search.candidate import Candidate, CandidateResult
from olivepress.engine.search.executors import Executor, executors, make_executor
from olivepress.engine.search.order import Stage, stages
from olivepress.engine.search.samplers import make_sampler, samplers
from olivepress.errors import OlivepressError, PassFailedError
from olivepress.evaluation.objectives import (
    SubMetric,
    goal_threshold,
    meets,
    needs_baseline,
    objectives,
)
from olivepress.log import logger
from olivepress.models.handles import ModelHandle
from olivepress.plugins import Registry
from olivepress.progress import Progress, progress
from olivepress.workflow.space import SearchSpace, build_space, strategy_of

if TYPE_CHECKING:
    from olivepress.engine.runner import Engine


@dataclass
class SearchResult:
    sampler: str
    execution_order: str
    strategy: dict[str, Any] | None  # as written; None: the passes as written, evaluated
    sub_metrics: list[SubMetric]
    objectives: list[SubMetric]
    thresholds: dict[str, float | None]  # each goal's value to reach, by sub-metric
    baseline: dict[str, float] | None  # the input model's metrics
    candidates: list[CandidateResult] = field(default_factory=list)
    best: CandidateResult | None = None  # set by run_search, whose every stage picks one or raises
    goals_met_by_any: bool = True
    stop_reason: str = "every point tried"
    duration_s: float = 0.0

    def require_best(self) -> CandidateResult:
        """`best`, for a search that has run: a search none of whose candidates succeeded raised instead."""
        if self.best is None:
            raise OlivepressError("the search has no best candidate: it has not run")
        return self.best

    def footprint(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "objectives": [objective.name for objective in self.objectives],
            "sub_metrics": [{"name": sub.name, "higher_is_better": sub.higher_is_better,
                             "goal": sub.goal.model_dump() if sub.goal else None, "threshold": self.thresholds[sub.name]}
                            for sub in self.sub_metrics],
            "input_model_metrics": self.baseline,
            "candidates": [candidate.as_dict() for candidate in self.candidates],
            "best": self.require_best().number,
            "goals_met_by_any": self.goals_met_by_any,
            "stop_reason": self.stop_reason,
            "duration_s": self.duration_s,
        }


def strategy_registries() -> dict[str, Registry[Any]]:
    """The registries that resolve a search strategy's names, for the document checks at load time."""
    return {"sampler": samplers(), "executor": executors()}


def run_search(engine: "Engine", model: ModelHandle, key: str) -> SearchResult:
    """Evaluate the input model where needed, then every stage's candidates; the best is `result.best`."""
    config = engine.workflow.config
    strategy = strategy_of(config.engine)
    settings = strategy or SearchStrategyConfig()
    samplers().get(settings.sampler), executors().get(settings.executor)  # unknown names fail before any work
    evaluator = engine.evaluator()
    result = SearchResult(settings.sampler, settings.execution_order,
                          strategy.model_dump(mode="json") if strategy else None, evaluator.sub_metrics,
                          objectives(evaluator.config, settings.objectives), {}, None)
    started = time.perf_counter()
    if config.engine.evaluate_input_model or needs_baseline(evaluator.config):
        try:
            result.baseline = evaluator.evaluate(model, key).metrics
        except OlivepressError as error:
            raise OlivepressError(f"evaluating the input model: {error}") from error
    result.thresholds = {sub.name: goal_threshold(sub, (result.baseline or {}).get(sub.name))
                         for sub in result.sub_metrics}
    space = build_space(strategy, engine.workflow.steps, config.input_model.kind, engine.workflow.registry)
    plan = stages(space, settings.execution_order)
    deadline = started + settings.max_time if settings.max_time else None
    executor = make_executor(engine, model, key, settings)
    total = sum(min(_size(stage), settings.max_samples or math.inf) for stage in plan)
    steps, numbers = list(space.steps), itertools.count(1)
    choice: dict[str, dict[str, Any]] = {}
    try:
        with progress(total=total, desc="search", unit="candidate") as bar:
            for number_, stage in enumerate(plan):
                stage_space = SearchSpace(steps[:stage.step_count], stage.dimensions, space.input_kind)
                run = _Stage(number_, stage_space, choice, result, settings, executor, bar, numbers)
                stage_best, point = run.search(settings.max_samples, deadline)
                steps[:stage.step_count] = stage_space.configure(point)
                choice = stage_best.choice
                result.best = stage_best
    finally:
        executor.close()
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def _size(stage: Stage) -> int:
    return math.prod(len(dimension.values) for dimension in stage.dimensions)


class _Stage:
    """One stage's loop: keep `capacity` candidates in flight, tell the sampler each result, stop on a limit."""

    def __init__(self, number_: int, space: SearchSpace, choice: dict, result: SearchResult,
                 settings: SearchStrategyConfig, executor: Executor, bar: Progress, numbers: Iterator[int]):
        self.number, self.space, self.choice, self.result = number_, space, choice, result
        self.settings, self.executor, self.bar, self.numbers = settings, executor, bar, numbers
        self.sampler = make_sampler(settings.sampler, space, result.objectives, settings.seed)

    def search(self, limit: int, deadline: float | None) -> tuple[CandidateResult, tuple[int, ...]]:
        """The stage's best candidate and its point. Its first candidate runs even past the deadline, so
        that every stage, and so the search, ends with a model."""
        in_flight: dict[Any, Candidate] = {}
        finished: list[tuple[CandidateResult, tuple[int, ...]]] = []
        stop, asked = None, 0
        while True:
            while stop is None and len(in_flight) < self.executor.capacity:
                if limit and asked >= limit:
                    stop = "max_samples reached"
                elif asked and deadline is not None and time.perf_counter() > deadline:
                    stop = "max_time reached"
                elif (point := self.sampler.ask()) is None:
                    break
                else:
                    asked += 1
                    candidate = Candidate(next(self.numbers), self.number, point,
                                          {**self.choice, **self.space.describe(point)}, self.space.configure(point))
                    in_flight[self.executor.submit(candidate)] = candidate
            if not in_flight:
                break
            for handle, outcome in self.executor.wait(list(in_flight)):
                point = in_flight.pop(handle).point
                self._record(outcome, point)
                finished.append((outcome, point))
                if self.settings.stop_when_goals_met and outcome.goals_met and stop is None:
                    stop = "goals met"
        if stop is not None:
            self.result.stop_reason = stop
        return self._choose(finished)

    def _record(self, outcome: CandidateResult, point: tuple[int, ...]) -> None:
        result = self.result
        if outcome.succeeded:
            outcome.goals_met = all(meets(sub, outcome.metrics[sub.name], result.thresholds[sub.name])
                                    for sub in result.sub_metrics)
        self.sampler.tell(point, [outcome.metrics[o.name] for o in result.objectives] if outcome.succeeded else None)
        result.candidates.append(outcome)
        self.bar.update(1)
        described = describe_choice(outcome.choice) or "the passes as written"
        if outcome.succeeded:
            numbers = ", ".join(f"{name} {number(value)}" for name, value in outcome.metrics.items())
            logger.info("candidate %d (%s): %s%s", outcome.number, described, numbers,
                        "" if outcome.goals_met else " (goals missed)")
        else:
            logger.info("candidate %d (%s) failed: %s", outcome.number, described, outcome.error)

    def _choose(self, finished: list[tuple[CandidateResult, tuple[int, ...]]]) -> tuple[CandidateResult, tuple[int, ...]]:
        """Among the candidates that met every goal (or, if none did, all that succeeded): mark the pareto
        frontier and pick the best by the objectives' priority."""
        succeeded = [outcome for outcome, _ in finished if outcome.succeeded]
        if not succeeded:
            raise _all_failed([outcome for outcome, _ in finished], self.number)
        kept = [outcome for outcome in succeeded if outcome.goals_met]
        self.result.goals_met_by_any = bool(kept)
        pool = kept or succeeded
        for outcome in pareto_front(pool, self.result.objectives):
            outcome.pareto = True
        best = best_of(pool, self.result.objectives)
        return best, next(point for outcome, point in finished if outcome is best)


def _all_failed(failed: list[CandidateResult], stage: int) -> Exception:
    """The first failure, raised as what it was, noting how many failed with it."""
    if not failed:
        return OlivepressError(f"engine.search_strategy: search stage {stage + 1} has no valid point after the "
                               "choices of the stages before it")
    first = failed[0]
    more = "" if len(failed) == 1 else f" (all {len(failed)} candidates failed; this was candidate {first.number})"
    message = f"{first.error}{more}"  # a failed candidate always has its error
    if first.error_kind == "input":
        return OlivepressError(message)
    if first.error_kind == "pass" and first.failed_pass is not None and first.failed_reason is not None:
        return PassFailedError(first.failed_pass, first.failed_reason + more)
    return RuntimeError(message)


def plan_lines(engine: "Engine") -> list[str]:
    """What `run --dry-run` says about the evaluation and the search."""
    config = engine.workflow.config
    if config.engine.evaluator is None:
        return []
    evaluator = config.evaluators[config.engine.evaluator]
    strategy = strategy_of(config.engine)
    names = ", ".join(objective.name for objective in objectives(evaluator, strategy.objectives if strategy else None))
    lines = [f"evaluator: {config.engine.evaluator} (objectives: {names})"]
    if strategy is not None:
        samplers().get(strategy.sampler), executors().get(strategy.executor)
        space = build_space(strategy, engine.workflow.steps, config.input_model.kind, engine.workflow.registry)
        sizes = " x ".join(f"{d.name} {len(d.values)}" for d in space.dimensions) or "no searched parameter"
        workers = f"{strategy.executor} x{strategy.num_workers}"
        lines.append(f"search: {space.size} point{'s' if space.size != 1 else ''} ({sizes}); {strategy.sampler} "
                     f"sampler, {strategy.execution_order} order, {workers}")
    return lines
