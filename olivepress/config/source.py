"""Reading a workflow document from JSON or YAML, keeping the line of every key for error messages."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from olivepress.errors import OlivepressError

DocPath = tuple[str | int, ...]  # keys and list indexes from the document's root


@dataclass
class SourceDocument:
    """The parsed document and where each of its keys was written."""

    data: Any
    file: str
    lines: dict[DocPath, int] = field(default_factory=dict)

    def line_of(self, path: DocPath) -> int | None:
        """The line of `path`, or of its deepest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def located(self, path: DocPath, message: str) -> str:
        """`file:line: path: message`, the one form of every problem found in a document."""
        line = self.line_of(path)
        return f"{self.file}{f':{line}' if line else ''}: {format_path(path)}: {message}"


def format_path(path: DocPath) -> str:
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text or "(document)"


def read_document(file: Path) -> SourceDocument:
    """Parse `file` as JSON (.json) or YAML (anything else); a syntax error names the line."""
    if not file.is_file():
        raise OlivepressError(f"{file}: no such file")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise OlivepressError(f"{file}:{error.lineno}:{error.colno}: malformed JSON: {error.msg}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise OlivepressError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise OlivepressError(f"{file}: a workflow document must be a mapping, not {type(data).__name__}")
    return SourceDocument(data=data, file=str(file), lines=_key_lines(text))


def _key_lines(text: str) -> dict[DocPath, int]:
    """Line numbers (1-based) of every mapping key and sequence item; JSON is read as YAML for this."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}  # valid JSON that YAML cannot read (rare escapes): errors then go without line numbers
    lines: dict[DocPath, int] = {}

    def walk(node: yaml.Node, path: DocPath) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, key_node.value)
                lines[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines
