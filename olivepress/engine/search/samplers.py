"""Samplers: which point of a search space to try next. Each proposes valid points only, none twice.

A sampler is registered by name (BUILTIN_SAMPLERS, the `olivepress.samplers` entry-point group, or
`register_sampler`); `engine.search_strategy.sampler` names it, or gives 'package.module:Class'.
"""

import random
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

from olivepress.errors import OlivepressError
from olivepress.evaluation.objectives import SubMetric
from olivepress.plugins import Registry, subclass_of
from olivepress.workflow.space import Point, SearchSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

SHUFFLE_LIMIT = 1_000_000  # larger spaces are sampled by rejection instead of shuffling every index

ENTRY_POINT_GROUP = "olivepress.samplers"

BUILTIN_SAMPLERS = (
    ("sequential", "olivepress.engine.search.samplers:SequentialSampler"),
    ("random", "olivepress.engine.search.samplers:RandomSampler"),
    ("tpe", "olivepress.engine.search.samplers:TpeSampler"),
)


class Sampler:
    """Built once per search stage as `Sampler(space, objectives, seed)`. The driver then calls `ask` for the
    next point (None: no point left) and, once that candidate finishes, `tell` with its objective values in
    the objectives' order (None: the candidate failed); several points may be asked before any is told."""

    def __init__(self, space: SearchSpace, objectives: list[SubMetric], seed: int):
        self.space, self.objectives, self.seed = space, objectives, seed

    def ask(self) -> Point | None:
        raise NotImplementedError

    def tell(self, point: Point, values: list[float] | None) -> None:
        """Only a sampler that learns from results (tpe) uses this."""


class SequentialSampler(Sampler):
    """Every point in order: the first dimension varies slowest."""

    def __init__(self, space: SearchSpace, objectives: list[SubMetric], seed: int):
        super().__init__(space, objectives, seed)
        self._points = (point for point in space.points() if space.is_valid(point))

    def ask(self) -> Point | None:
        return next(self._points, None)


class RandomSampler(Sampler):
    """Every point once, in a random order fixed by the seed."""

    def __init__(self, space: SearchSpace, objectives: list[SubMetric], seed: int):
        super().__init__(space, objectives, seed)
        self._points = (point for point in _shuffled(space, random.Random(seed)) if space.is_valid(point))

    def ask(self) -> Point | None:
        return next(self._points, None)


def _shuffled(space: SearchSpace, rng: random.Random) -> Iterator[Point]:
    size = space.size
    if size <= SHUFFLE_LIMIT:
        yield from (space.point_at(number) for number in rng.sample(range(size), size))
        return
    seen: set[int] = set()
    while len(seen) < size:
        number = rng.randrange(size)
        if number not in seen:
            seen.add(number)
            yield space.point_at(number)


class TpeSampler(Sampler):
    """optuna's TPE over the dimensions' value indexes, one objective per direction. A point it proposes a
    second time is answered from the first result; when it only repeats itself, the next untried point in
    order is queued, so that it never stalls before the space is used up."""

    MAX_REPEATS = 20

    def __init__(self, space: SearchSpace, objectives: list[SubMetric], seed: int):
        try:
            import optuna
        except ImportError:
            raise OlivepressError('the tpe sampler needs optuna: pip install "olivepress[search]"') from None
        super().__init__(space, objectives, seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(
            directions=["maximize" if objective.higher_is_better else "minimize" for objective in objectives],
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        self.distributions: dict[str, BaseDistribution] = {
            dimension.name: optuna.distributions.CategoricalDistribution(list(range(len(dimension.values))))
            for dimension in space.dimensions
        }
        self._pending: dict[Point, object] = {}
        self._done: dict[Point, list[float] | None] = {}
        self._untried = (point for point in space.points() if space.is_valid(point))

    def ask(self) -> Point | None:
        for _ in range(self.MAX_REPEATS):
            trial = self.study.ask(self.distributions)
            point = self._point(trial)
            if point not in self._done and point not in self._pending and self.space.is_valid(point):
                self._pending[point] = trial
                return point
            self._answer(trial, self._done.get(point))
        untried = next((p for p in self._untried if p not in self._done and p not in self._pending), None)
        if untried is None:
            return None
        self.study.enqueue_trial({d.name: index for d, index in zip(self.space.dimensions, untried, strict=True)})
        self._pending[untried] = self.study.ask(self.distributions)
        return untried

    def tell(self, point: Point, values: list[float] | None) -> None:
        self._done[point] = values
        self._answer(self._pending.pop(point), values)

    def _point(self, trial) -> Point:
        return tuple(trial.params[dimension.name] for dimension in self.space.dimensions)

    def _answer(self, trial, values: list[float] | None) -> None:
        if values is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, values)


@cache
def samplers() -> Registry[type[Sampler]]:
    """The built-in samplers and every installed plugin's; `register_sampler` adds more."""
    return Registry("sampler", ENTRY_POINT_GROUP, subclass_of(Sampler)).register_all(BUILTIN_SAMPLERS).with_entry_points()


def register_sampler(name: str, sampler: type[Sampler]) -> None:
    """Make a sampler usable by name in documents (as a plugin's entry point does)."""
    samplers().add(name, sampler)


def make_sampler(name: str, space: SearchSpace, objectives: list[SubMetric], seed: int) -> Sampler:
    return samplers().get(name)(space, objectives, seed)
