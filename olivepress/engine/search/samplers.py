"""Samplers: which point of a search space to try next. Each proposes valid points only, none twice."""

import random
from collections.abc import Iterator

from olivepress.errors import OlivepressError
from olivepress.evaluation.objectives import SubMetric
from olivepress.workflow.space import Point, SearchSpace

SHUFFLE_LIMIT = 1_000_000  # larger spaces are sampled by rejection instead of shuffling every index


class Sampler:
    """`ask` proposes the next point (None: no point left); `tell` reports its objective values, in the
    objectives' order (None: the candidate failed)."""

    def ask(self) -> Point | None:
        raise NotImplementedError

    def tell(self, point: Point, values: list[float] | None) -> None:
        """Only a sampler that learns from results (tpe) uses this."""


class SequentialSampler(Sampler):
    """Every point in order: the first dimension varies slowest."""

    def __init__(self, space: SearchSpace):
        self._points = (point for point in space.points() if space.is_valid(point))

    def ask(self) -> Point | None:
        return next(self._points, None)


class RandomSampler(Sampler):
    """Every point once, in a random order fixed by the seed."""

    def __init__(self, space: SearchSpace, seed: int):
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
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.space = space
        self.study = optuna.create_study(
            directions=["maximize" if objective.higher_is_better else "minimize" for objective in objectives],
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        self.distributions = {
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
        point = next((p for p in self._untried if p not in self._done and p not in self._pending), None)
        if point is None:
            return None
        self.study.enqueue_trial({d.name: index for d, index in zip(self.space.dimensions, point)})
        self._pending[point] = self.study.ask(self.distributions)
        return point

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


def make_sampler(name: str, space: SearchSpace, objectives: list[SubMetric], seed: int) -> Sampler:
    if name == "sequential":
        return SequentialSampler(space)
    if name == "random":
        return RandomSampler(space, seed)
    return TpeSampler(space, objectives, seed)
