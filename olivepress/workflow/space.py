"""The search space: the values each searched pass parameter takes, and which combinations are valid."""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from olivepress.config.base import did_you_mean
from olivepress.config.sections import EngineConfig, SearchStrategyConfig
from olivepress.config.source import format_path
from olivepress.errors import OlivepressError
from olivepress.passes.base import Pass
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.plan import PassStep, chain_problem

SPACE_PATH = ("engine", "search_strategy", "search_space")
TYPE_KEY = "type"  # in a step's search space: alternative pass types
MAX_CHECKED_POINTS = 20_000  # spaces up to this size have every point validated before anything runs

Point = tuple[int, ...]  # one index into each dimension's values


class SpaceError(OlivepressError):
    """A problem with the search space, at a path in the document."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


class InvalidPoint(Exception):
    """A combination of values that no pass accepts; the message says why."""


@dataclass(frozen=True)
class Dimension:
    step: str  # the pass's name in `passes`
    param: str  # a field of the pass's Config, or TYPE_KEY
    values: tuple[Any, ...]  # for TYPE_KEY: pass classes
    from_document: bool  # False: the pass's own default space

    @property
    def name(self) -> str:
        return f"{self.step}.{self.param}"

    def label(self, index: int) -> Any:
        value = self.values[index]
        return value.name if self.param == TYPE_KEY else value


def strategy_of(engine: EngineConfig) -> SearchStrategyConfig | None:
    """The search strategy; `search_strategy: true` means the defaults, false or null none."""
    value = engine.search_strategy
    if value is True:
        return SearchStrategyConfig()
    return value or None


class SearchSpace:
    """Points are index tuples over the dimensions, in document order; the last dimension varies fastest."""

    def __init__(self, steps: list[PassStep], dimensions: list[Dimension], input_kind: str):
        self.steps = steps
        self.dimensions = dimensions
        self.input_kind = input_kind
        self._configured: dict[Point, tuple[PassStep, ...] | InvalidPoint] = {}

    @property
    def size(self) -> int:
        return math.prod(len(dimension.values) for dimension in self.dimensions)

    def points(self) -> Iterator[Point]:
        return itertools.product(*(range(len(dimension.values)) for dimension in self.dimensions))

    def point_at(self, number: int) -> Point:
        """The point at position `number` of `points()`, without enumerating the ones before it."""
        indexes = []
        for dimension in reversed(self.dimensions):
            number, index = divmod(number, len(dimension.values))
            indexes.append(index)
        return tuple(reversed(indexes))

    def describe(self, point: Point) -> dict[str, dict[str, Any]]:
        """{step: {param: value}} of the searched values, JSON-friendly."""
        described: dict[str, dict[str, Any]] = {}
        for dimension, index in zip(self.dimensions, point, strict=True):
            described.setdefault(dimension.step, {})[dimension.param] = dimension.label(index)
        return described

    def is_valid(self, point: Point) -> bool:
        try:
            self.configure(point)
        except InvalidPoint:
            return False
        return True

    def configure(self, point: Point) -> tuple[PassStep, ...]:
        """The steps with the point's values set; InvalidPoint when a pass rejects them."""
        if point not in self._configured:
            try:
                self._configured[point] = self._configure(point)
            except InvalidPoint as error:
                self._configured[point] = error
        result = self._configured[point]
        if isinstance(result, InvalidPoint):
            raise result
        return result

    def _configure(self, point: Point) -> tuple[PassStep, ...]:
        chosen: dict[str, dict[str, Any]] = {}
        for dimension, index in zip(self.dimensions, point, strict=True):
            chosen.setdefault(dimension.step, {})[dimension.param] = dimension.values[index]
        steps = []
        for step in self.steps:
            values = dict(chosen.get(step.name, {}))
            pass_class: type[Pass] = values.pop(TYPE_KEY, step.pass_class)
            if values or pass_class is not step.pass_class:
                params = {**step.config.model_dump(exclude_unset=True), **values}
                try:
                    step = replace(step, pass_class=pass_class, config=pass_class.Config.model_validate(params))
                except ValidationError as error:
                    problem = error.errors()[0]
                    where = ".".join(str(part) for part in problem["loc"])
                    raise InvalidPoint(f"passes.{step.name}{'.' + where if where else ''}: "
                                       f"{problem['msg'].removeprefix('Value error, ')}") from None
            steps.append(step)
        unchained = chain_problem(self.input_kind, steps)
        if unchained is not None:
            raise InvalidPoint(f"{format_path(unchained.path)}: {unchained.message}")
        return tuple(steps)

    def check(self) -> None:
        """Refuse, before anything runs, a document value that no valid point uses, and a space with no valid point."""
        if self.size > MAX_CHECKED_POINTS:
            if not any(self.is_valid(point) for point in itertools.islice(self.points(), MAX_CHECKED_POINTS)):
                raise SpaceError(SPACE_PATH, f"no valid point among the first {MAX_CHECKED_POINTS}: "
                                 f"{self._reason(next(self.points()))}")
            return
        used: list[set[int]] = [set() for _ in self.dimensions]
        first_invalid: Point | None = None
        for point in self.points():
            if self.is_valid(point):
                for indexes, index in zip(used, point, strict=True):
                    indexes.add(index)
            elif first_invalid is None:
                first_invalid = point
        for number, (dimension, indexes) in enumerate(zip(self.dimensions, used, strict=True)):
            if not dimension.from_document or not indexes:
                continue
            for index in range(len(dimension.values)):
                if index not in indexes:
                    example = next(p for p in self.points() if p[number] == index)
                    raise SpaceError((*SPACE_PATH, dimension.step, dimension.param, index),
                                     f"{dimension.label(index)!r} is never valid: {self._reason(example)}")
        if first_invalid is not None and not any(used):
            raise SpaceError(SPACE_PATH, f"the search space has no valid point: {self._reason(first_invalid)}")

    def _reason(self, point: Point) -> str:
        try:
            self.configure(point)
        except InvalidPoint as error:
            return str(error)
        return "valid"


def build_space(strategy: SearchStrategyConfig | None, steps: list[PassStep], input_kind: str,
                registry: PassRegistry) -> SearchSpace:
    """The document's lists, then (include_pass_params) each pass's default spaces for the fields left unset."""
    own_spaces = strategy.search_space if strategy else {}
    names = [step.name for step in steps]
    for name in own_spaces:
        if name not in names:
            raise SpaceError((*SPACE_PATH, name), f"no pass named '{name}' in 'passes'{did_you_mean(name, names)}")
    dimensions: list[Dimension] = []
    for step in steps:
        own = own_spaces.get(step.name, {})
        alternatives = _alternatives(step, own.get(TYPE_KEY), registry)
        if alternatives is not None:
            dimensions.append(Dimension(step.name, TYPE_KEY, alternatives, True))
        configs = [cls.Config for cls in alternatives or (step.pass_class,)]
        fields: list[str] = []
        for key, values in own.items():
            if key == TYPE_KEY:
                continue
            path = (*SPACE_PATH, step.name, key)
            field = next((found for config in configs if (found := config.keys_of_fields().get(key))), None)
            if field is None:
                known = sorted({k for config in configs for k in config.known_keys()})
                raise SpaceError(path, f"{step.pass_class.name} has no parameter '{key}'{did_you_mean(key, known)}")
            if field in fields:
                raise SpaceError(path, f"parameter '{field}' is given twice")
            if not values:
                raise SpaceError(path, "an empty list has no value to try")
            fields.append(field)
            dimensions.append(Dimension(step.name, field, tuple(values), True))
        if strategy and strategy.include_pass_params and alternatives is None:
            for field, defaults in step.config.search_defaults.items():
                if field not in fields and field not in step.config.model_fields_set:
                    dimensions.append(Dimension(step.name, field, tuple(defaults), False))
    return SearchSpace(steps, dimensions, input_kind)


def _alternatives(step: PassStep, type_names: list[Any] | None,
                  registry: PassRegistry) -> tuple[type[Pass], ...] | None:
    if type_names is None:
        return None
    path = (*SPACE_PATH, step.name, TYPE_KEY)
    if not type_names:
        raise SpaceError(path, "an empty list has no value to try")
    classes = []
    for index, name in enumerate(type_names):
        try:
            classes.append(registry.get(str(name)))
        except OlivepressError as error:
            raise SpaceError((*path, index), str(error)) from None
    return tuple(classes)
