"""The one registration mechanism of every plug point (passes, metrics, samplers, executors).

A registry maps names to items. Built-ins are registered from a table of 'package.module:attr' references,
installed plugins through an entry-point group, and a document may name any item by its reference. An unknown
name is an error that lists the known ones; nothing falls back silently.
"""

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.log import logger

T = TypeVar("T")


def resolve(reference: str, what: str = "object") -> object:
    """Import 'package.module:attr'."""
    module_name, _, attr = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise OlivepressError(f"cannot import {what} '{reference}': {error}") from error


class Registry(Generic[T]):
    """Items of one plug point by name (case-insensitive).

    `what` names the plug point in messages ("pass type"); `group` is its entry-point group; `check` turns a
    resolved object into an item or raises TypeError saying what it should be; `name_of` gives an item's
    name when the item declares it (pass classes), else the registering name is used.
    """

    def __init__(self, what: str, group: str, check: Callable[[object], T],
                 name_of: Callable[[T], str] | None = None):
        self.what, self.group, self._check, self._name_of = what, group, check, name_of
        self._by_name: dict[str, tuple[str, T]] = {}

    def load(self, reference: str) -> T:
        """The item a 'package.module:attr' reference points to."""
        try:
            return self._check(resolve(reference, self.what))
        except TypeError as error:
            raise OlivepressError(f"'{reference}' is not a {self.what}: {error}") from None

    def add(self, name: str, item: T) -> None:
        """Register `item` under `name` (or the name the item declares); a name taken by another item is an error."""
        name = self._name_of(item) if self._name_of is not None else name
        existing = self._by_name.get(name.lower())
        if existing is not None and existing[1] is not item:
            raise OlivepressError(f"{self.what} name '{name}' is taken by both {existing[1]!r} and {item!r}")
        self._by_name[name.lower()] = (name, item)

    def register(self, name: str, reference: str) -> None:
        self.add(name, self.load(reference))

    def register_all(self, table: Iterable[tuple[str, str]]) -> "Registry[T]":
        for name, reference in table:
            self.register(name, reference)
        return self

    def with_entry_points(self) -> "Registry[T]":
        """Add every installed plugin of the group; one that fails to load is skipped with a warning."""
        for entry_point in importlib.metadata.entry_points(group=self.group):
            try:
                self.register(entry_point.name, entry_point.value)
            except OlivepressError as error:
                logger.warning("skipping %s plugin '%s': %s", self.what, entry_point.name, error)
        return self

    def get(self, name: str) -> T:
        """The item registered as `name`, or the one a 'package.module:attr' reference points to."""
        if ":" in name:
            return self.load(name)
        found = self._by_name.get(name.lower())
        if found is None:
            known = self.names()
            raise OlivepressError(f"unknown {self.what} '{name}'{did_you_mean(name, known)}; "
                                  f"known: {', '.join(known) or 'none'}")
        return found[1]

    def names(self) -> list[str]:
        return sorted(name for name, _ in self._by_name.values())

    def items(self) -> list[tuple[str, T]]:
        """(name, item) in the order registered."""
        return list(self._by_name.values())

    def __iter__(self) -> Iterator[T]:
        return iter(item for _, item in self.items())


class subclass_of:  # noqa: N801 - used as a function; a class so that registries pickle (search workers)
    """A `check` for registries of classes: the object must be a subclass of `base`."""

    def __init__(self, base: type):
        self.base = base

    def __call__(self, value: object) -> type:
        if not (isinstance(value, type) and issubclass(value, self.base)):
            raise TypeError(f"expected a subclass of {self.base.__module__}.{self.base.__qualname__}")
        return value


class instance_of(Generic[T]):  # noqa: N801 - as subclass_of
    """A `check` for registries of records: the object must be an instance of `cls`."""

    def __init__(self, cls: type[T]):
        self.cls = cls

    def __call__(self, value: object) -> T:
        if not isinstance(value, self.cls):
            raise TypeError(f"expected a {self.cls.__module__}.{self.cls.__qualname__}")
        return value
