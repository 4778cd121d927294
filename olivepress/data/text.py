"""Turning dataset rows into training texts: a {field} template, joined columns, or a chat template."""

import string
from collections.abc import Callable
from typing import Any

from olivepress.config.data_params import PreProcessParams
from olivepress.errors import OlivepressError

Row = dict[str, Any]


def text_function(params: PreProcessParams, columns: list[str], tokenizer: Any) -> Callable[[Row], str]:
    """A function from a row to its text; the columns it needs are checked against `columns` here, once."""
    messages_col = params.messages_col or ("messages" if params.use_chat_template else None)
    if messages_col is not None:
        _require([messages_col], columns, "messages_col")
        if getattr(tokenizer, "chat_template", None) is None:
            raise OlivepressError(f"messages_col: the tokenizer has no chat template to render column {messages_col!r} with")
        return lambda row: tokenizer.apply_chat_template(row[messages_col], tokenize=False)
    if params.text_template is not None:
        fields = template_fields(params.text_template)
        _require(fields, columns, "text_template")
        template = params.text_template
        return lambda row: template.format_map({name: _text(row[name]) for name in fields})
    text_cols = [params.text_cols] if isinstance(params.text_cols, str) else params.text_cols or ["text"]
    _require(text_cols, columns, "text_cols")
    return lambda row: "\n".join(_text(row[col]) for col in text_cols if row[col] not in (None, ""))


def template_fields(template: str) -> list[str]:
    """The field names a str.format template uses, in order, each once."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise OlivepressError(f"text_template: {error}") from None
    if "" in names or any(not name.isidentifier() for name in names):
        raise OlivepressError(f"text_template: each {{...}} must name a field, e.g. {{prompt}} (got {template!r})")
    return list(dict.fromkeys(names))


def _require(needed: list[str], columns: list[str], option: str) -> None:
    missing = [name for name in needed if name not in columns]
    if missing:
        raise OlivepressError(
            f"{option}: the data has no field {', '.join(repr(m) for m in missing)}; its fields are {', '.join(columns)}"
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value)
