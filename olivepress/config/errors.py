"""Problems found in a document: pydantic validation errors as (path, message), and the error that lists them all."""

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError

from olivepress.config.source import DocPath
from olivepress.errors import OlivepressError

LOCATED = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*|\[\d+\])*): (.*)$", re.DOTALL)  # 'a.b[0]: ...'
UNKNOWN_KEY = re.compile(r"^unknown key '([^']+)'")
PYTHON_TYPES = ("str", "int", "float", "bool", "list", "dict", "none")
SHOWN_PROBLEMS = 20  # the CLI prints this many lines, then "... and N more"


class Problem(NamedTuple):
    path: DocPath  # where, in the document as written
    message: str


class DocumentError(OlivepressError):
    """The document is invalid. The message is the first problem; `problems` holds them all, one line each."""

    def __init__(self, problems: list[str]):
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems

    def shown(self, limit: int = SHOWN_PROBLEMS) -> list[str]:
        """The problems to print: the first `limit`, and a last line counting the others."""
        rest = len(self.problems) - limit
        return self.problems if rest <= 0 else [*self.problems[:limit], f"... and {rest} more"]


def document_path(data: Any, loc: tuple, missing: bool = False) -> DocPath:
    """The path in the document for a pydantic error location: union tags pydantic inserts are dropped, and a key
    written under an entry's `config` (Olive's nested spelling) is found there."""
    path: list[str | int] = []
    current = data
    for index, element in enumerate(loc):
        nested = current.get("config") if isinstance(current, dict) else None
        if isinstance(current, dict) and element in current:
            current = current[element]
        elif isinstance(nested, dict) and element in nested:
            path.append("config")
            current = nested[element]
        elif isinstance(current, list) and isinstance(element, int) and element < len(current):
            current = current[element]
        elif index == len(loc) - 1 and (missing or not _is_union_tag(element)):
            current = None  # a key the document leaves out: still name it
        else:
            continue  # a union tag such as 'HfModel', or a field the document writes flat
        path.append(element)
    return tuple(path)


def problems_of(error: ValidationError, data: Any,
                place: Callable[[DocPath], DocPath] = lambda path: path) -> list[Problem]:
    """One problem per error. `data` is what was validated; `place` maps a path in it to the path in the document.
    A validator's message that starts with a path inside the part it checks ('sub_types[0].name: ...') is located
    there."""
    problems = []
    for item in error.errors():
        inner, message = split_located(item["msg"].removeprefix("Value error, "))
        if item["type"] not in ("missing", "unknown_key") and _is_scalar(item.get("input")):
            message += f" (got {item['input']!r})"
        unknown = UNKNOWN_KEY.match(message)  # a nested section's unknown key, reported by a validator of its own
        if unknown is not None and item["type"] != "unknown_key":
            inner = (*inner, unknown.group(1))
        path = document_path(data, (*item["loc"], *inner), item["type"] == "missing")
        problems.append(Problem(place(path), message))
    return _without_union_echoes(problems)


def split_located(message: str) -> tuple[DocPath, str]:
    """('a', 'b', 0), 'problem' for 'a.b[0]: problem'; (), message for a message that names no path."""
    match = LOCATED.match(message)
    if match is None:
        return (), message
    parts = re.split(r"\.|\[|\]\.?", match.group(1))
    return tuple(int(part) if part.isdigit() else part for part in parts if part), match.group(2)


def _is_union_tag(element: str | int) -> bool:
    """Pydantic names the member of a union an error is about: a class ('HfModel'), a type ('str', 'list[str]')."""
    return isinstance(element, str) and (element[:1].isupper() or "[" in element or element in PYTHON_TYPES)


def _without_union_echoes(problems: list[Problem]) -> list[Problem]:
    """One line per place and message: the members of a union each report the same problem."""
    return list(dict.fromkeys(problems))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80
