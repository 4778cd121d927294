"""One candidate: its passes run through the cache, its model evaluated, any failure recorded, not raised."""

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from olivepress.errors import OlivepressError, PassFailedError
from olivepress.log import logger
from olivepress.models.handles import ModelHandle

if TYPE_CHECKING:
    from olivepress.engine.runner import Engine, StepResult
    from olivepress.workflow.plan import PassStep, Workflow


@dataclass(frozen=True)
class Candidate:
    number: int  # 1, 2, ... across the whole search
    stage: int  # 0, 1, ... (pass-by-pass); 0 for joint
    point: tuple[int, ...]  # in the stage's space
    choice: dict[str, dict[str, Any]]  # the searched values by pass, earlier stages' choices included
    steps: tuple["PassStep", ...]  # the passes to run, configured


@dataclass
class CandidateResult:
    number: int
    stage: int
    choice: dict[str, dict[str, Any]]
    steps: list["StepResult"] = field(default_factory=list)
    model: ModelHandle | None = None
    model_key: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation_cached: bool = False
    duration_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None  # input (OlivepressError), pass (PassFailedError) or other
    failed_pass: str | None = None  # with the reason, for re-raising a PassFailedError
    failed_reason: str | None = None
    goals_met: bool = False  # set by the search, which knows the goals' thresholds
    pareto: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def output(self) -> tuple[ModelHandle, str]:
        """The model and its key, which a candidate that succeeded always has."""
        if self.model is None or self.model_key is None:
            raise OlivepressError(f"candidate {self.number} has no model: it failed ({self.error})")
        return self.model, self.model_key

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number, "stage": self.stage, "choice": self.choice,
            "status": "succeeded" if self.succeeded else "failed", "error": self.error,
            "model_key": self.model_key, "metrics": self.metrics,
            "evaluation": "cached" if self.evaluation_cached else "measured",
            "goals_met": self.goals_met, "pareto": self.pareto, "duration_s": self.duration_s,
            "passes": [step.as_dict() for step in self.steps],
        }


def run_candidate(engine: "Engine", candidate: Candidate, model: ModelHandle, key: str) -> CandidateResult:
    result = CandidateResult(candidate.number, candidate.stage, candidate.choice)
    started = time.perf_counter()
    try:
        model, key, result.steps = engine.run_steps(list(candidate.steps), model, key)
        evaluation = engine.evaluator().evaluate(model, key)
        result.model, result.model_key = model, key
        result.metrics, result.evaluation_cached = evaluation.metrics, evaluation.cached
    except OlivepressError as error:
        result.error, result.error_kind = str(error), "input"
    except PassFailedError as error:
        result.error, result.error_kind = str(error), "pass"
        result.failed_pass, result.failed_reason = error.pass_name, error.reason
    except Exception as error:  # a library failure while evaluating: recorded like a pass failure
        result.error, result.error_kind = f"{type(error).__name__}: {error}", "other"
    if result.error is not None:
        logger.debug("candidate %d failed", candidate.number, exc_info=True)
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def run_candidate_job(workflow: "Workflow", candidate: Candidate, model: ModelHandle, key: str,
                      cwd: str | None = None) -> CandidateResult:
    """The entry point in a worker process or Ray task: an engine of its own over the same cache."""
    from olivepress.engine.runner import Engine

    if cwd is not None and os.path.isdir(cwd):
        os.chdir(cwd)  # relative data files and paths mean what they mean to the engine that sent the job
    return run_candidate(Engine(workflow), candidate, model, key)
