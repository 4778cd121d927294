"""Turning pydantic validation errors into one-line messages that name the document path and line."""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from olivepress.config.source import Path_, SourceDocument


def document_path(data: Any, loc: tuple) -> Path_:
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


def format_path(path: Path_) -> str:
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text or "(document)"


def error_lines(
    error: ValidationError, source: SourceDocument, data: Any, place: Callable[[Path_], Path_] = lambda path: path
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
        line = source.line_of(path)
        where = f"{source.file}:{line}" if line else source.file
        lines.append(f"{where}: {format_path(path)}: {message}")
    return lines


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80
