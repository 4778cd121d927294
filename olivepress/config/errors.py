"""Turning pydantic validation errors into one-line messages that name the document path and line."""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from olivepress.config.source import DocPath, SourceDocument
from olivepress.errors import OlivepressError


class DocumentError(OlivepressError):
    """The document is invalid. The message is the first problem; `problems` holds them all."""

    def __init__(self, problems: list[str]):
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems


def document_path(data: Any, loc: tuple) -> DocPath:
    """The path in the document for a pydantic error location (dropping union tags pydantic inserts)."""
    path: list[str | int] = []
    current = data
    for index, element in enumerate(loc):
        if isinstance(current, dict) and element in current:
            current = current[element]
        elif isinstance(current, list) and isinstance(element, int) and element < len(current):
            current = current[element]
        elif index == len(loc) - 1:
            current = None  # a missing key: still name it
        else:
            continue  # a union tag such as 'HfModel'
        path.append(element)
    return tuple(path)


def error_lines(
    error: ValidationError, source: SourceDocument, data: Any, place: Callable[[DocPath], DocPath] = lambda path: path
) -> list[str]:
    """One line per error: `file:line: path: problem`. `data` is what was validated; `place` maps a path
    in it to the path in the document."""
    lines = []
    for item in error.errors():
        path = document_path(data, item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "unknown_key":
            path = (*path, item["ctx"]["key"])
        path = place(path)
        if item["type"] not in ("missing", "unknown_key") and _is_scalar(item.get("input")):
            message += f" (got {item['input']!r})"
        lines.append(source.located(path, message))
    return lines


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80
