"""Where candidates run: in the engine's process, in local worker processes, or as tasks on a Ray cluster.

Each executor takes up to `capacity` candidates at once and hands back results as they finish. Workers build
an engine of their own over the same cache, whose per-key locks let them share the passes they have in common.
An executor is registered by name (BUILTIN_EXECUTORS, the `olivepress.executors` entry-point group, or
`register_executor`) as a factory `(engine, model, key, settings) -> Executor`.
"""

import os
from collections.abc import Callable, Hashable
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from olivepress.config.sections import SearchStrategyConfig
from olivepress.engine.search.candidate import (
    Candidate,
    CandidateResult,
    run_candidate,
    run_candidate_job,
)
from olivepress.errors import OlivepressError
from olivepress.models.handles import ModelHandle
from olivepress.plugins import Registry

if TYPE_CHECKING:
    from olivepress.engine.runner import Engine

ENTRY_POINT_GROUP = "olivepress.executors"

BUILTIN_EXECUTORS = (
    ("local", "olivepress.engine.search.executors:local_executor"),
    ("ray", "olivepress.engine.search.executors:RayExecutor"),
)


class Executor(Protocol):
    """Where the driver runs candidates. Made once per search by its factory; the driver keeps at most
    `capacity` candidates submitted and not yet returned, calls `wait` with the handles of those in flight (it
    returns at least one finished (handle, result) pair, a failure recorded in the result, never raised), and
    calls `close` once at the end, also after an error."""

    capacity: int

    def submit(self, candidate: Candidate) -> Hashable: ...

    def wait(self, handles: list[Any]) -> list[tuple[Any, CandidateResult]]: ...

    def close(self) -> None: ...


ExecutorFactory = Callable[["Engine", ModelHandle, str, SearchStrategyConfig], Executor]


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

    def __init__(self, engine: "Engine", model: ModelHandle, key: str, settings: SearchStrategyConfig):
        num_workers, address = settings.num_workers, settings.ray_address
        try:
            import ray
        except ImportError:
            raise OlivepressError('engine.search_strategy.executor: ray needs Ray: pip install "olivepress[ray]"') from None
        self._ray = ray
        self.capacity = num_workers
        self._started = not ray.is_initialized()
        if self._started:
            local: dict[str, Any] = {"num_cpus": num_workers} if address is None else {}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
            except ConnectionError as error:
                raise OlivepressError(f"engine.search_strategy.ray_address: cannot reach {address}: {error}") from None
        gpus = 1 if engine.accelerator.device == "gpu" else 0
        # Any: ray's typed overloads of remote() do not cover run_candidate_job's optional argument.
        self._task: Any = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_candidate_job)
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


def local_executor(engine: "Engine", model: ModelHandle, key: str, settings: SearchStrategyConfig) -> Executor:
    """The engine's own process for one worker, else a pool of worker processes."""
    if settings.num_workers > 1:
        return LocalPoolExecutor(engine, model, key, settings.num_workers)
    return InlineExecutor(engine, model, key)


def _callable(value: object) -> ExecutorFactory:
    if not callable(value):
        raise TypeError("expected a callable (engine, model, key, settings) -> Executor")
    return value


@cache
def executors() -> Registry[ExecutorFactory]:
    """The built-in executors and every installed plugin's; `register_executor` adds more."""
    return Registry("executor", ENTRY_POINT_GROUP, _callable).register_all(BUILTIN_EXECUTORS).with_entry_points()


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make an executor usable by name in documents (as a plugin's entry point does)."""
    executors().add(name, factory)


def make_executor(engine: "Engine", model: ModelHandle, key: str, settings: SearchStrategyConfig) -> Executor:
    return executors().get(settings.executor)(engine, model, key, settings)
