"""Where candidates run: in the engine's process, in local worker processes, or as tasks on a Ray cluster.

Each executor takes up to `capacity` candidates at once and hands back results as they finish. Workers build
an engine of their own over the same cache, whose per-key locks let them share the passes they have in common.
"""

import os
from typing import TYPE_CHECKING, Any

from olivepress.engine.search.candidate import (
    Candidate,
    CandidateResult,
    run_candidate,
    run_candidate_job,
)
from olivepress.errors import OlivepressError
from olivepress.models.handles import ModelHandle

if TYPE_CHECKING:
    from olivepress.engine.runner import Engine


class InlineExecutor:
    """One candidate at a time, in the engine's own process."""

    capacity = 1

    def __init__(self, engine: "Engine", model: ModelHandle, key: str):
        self.engine, self.model, self.key = engine, model, key
        self._done: dict[int, CandidateResult] = {}

    def submit(self, candidate: Candidate) -> int:
        self._done[candidate.number] = run_candidate(self.engine, candidate, self.model, self.key)
        return candidate.number

    def wait(self, handles: list[Any]) -> list[tuple[Any, CandidateResult]]:
        return [(handle, self._done.pop(handle)) for handle in handles]

    def close(self) -> None:
        pass


class LocalPoolExecutor:
    """`num_workers` spawned worker processes (spawn, not fork: torch's thread pools do not survive a fork)."""

    def __init__(self, engine: "Engine", model: ModelHandle, key: str, num_workers: int):
        import concurrent.futures
        import multiprocessing

        self.capacity = num_workers
        self.job = (engine.workflow, model, key)
        self._pool = concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"))
        self._candidates: dict[Any, Candidate] = {}

    def submit(self, candidate: Candidate):
        workflow, model, key = self.job
        future = self._pool.submit(run_candidate_job, workflow, candidate, model, key)
        self._candidates[future] = candidate
        return future

    def wait(self, handles: list[Any]) -> list[tuple[Any, CandidateResult]]:
        import concurrent.futures

        done, _ = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        results = []
        for future in done:
            candidate = self._candidates.pop(future)
            try:
                results.append((future, future.result()))
            except Exception as error:  # the worker process died
                results.append((future, lost(candidate, error)))
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks, `num_workers` in flight; a local Ray instance is started (and stopped) when no address is given."""

    def __init__(self, engine: "Engine", model: ModelHandle, key: str, num_workers: int, address: str | None):
        try:
            import ray
        except ImportError:
            raise OlivepressError('engine.search_strategy.executor: ray needs Ray: pip install "olivepress[ray]"') from None
        self._ray = ray
        self.capacity = num_workers
        self._started = not ray.is_initialized()
        if self._started:
            local = {"num_cpus": num_workers} if address is None else {}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
            except ConnectionError as error:
                raise OlivepressError(f"engine.search_strategy.ray_address: cannot reach {address}: {error}") from None
        gpus = 1 if engine.accelerator.device == "gpu" else 0
        self._task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_candidate_job)
        self._job = (ray.put(engine.workflow), model, key, os.getcwd())
        self._candidates: dict[Any, Candidate] = {}

    def submit(self, candidate: Candidate):
        workflow, model, key, cwd = self._job
        reference = self._task.remote(workflow, candidate, model, key, cwd)
        self._candidates[reference] = candidate
        return reference

    def wait(self, handles: list[Any]) -> list[tuple[Any, CandidateResult]]:
        done, _ = self._ray.wait(handles, num_returns=1)
        results = []
        for reference in done:
            candidate = self._candidates.pop(reference)
            try:
                results.append((reference, self._ray.get(reference)))
            except self._ray.exceptions.RayError as error:  # the task's worker died
                results.append((reference, lost(candidate, error)))
        return results

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def lost(candidate: Candidate, error: Exception) -> CandidateResult:
    """The result of a candidate whose worker died before it could report."""
    result = CandidateResult(candidate.number, candidate.stage, candidate.choice)
    result.error, result.error_kind = f"the worker died: {type(error).__name__}: {error}", "other"
    return result


def make_executor(engine: "Engine", model: ModelHandle, key: str, executor: str, num_workers: int,
                  ray_address: str | None):
    if executor == "ray":
        return RayExecutor(engine, model, key, num_workers, ray_address)
    if num_workers > 1:
        return LocalPoolExecutor(engine, model, key, num_workers)
    return InlineExecutor(engine, model, key)
