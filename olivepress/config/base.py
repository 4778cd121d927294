"""Base classes for the typed sections of a workflow document."""

import difflib
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


def did_you_mean(word: str, candidates: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when nothing is close."""
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean '{by_lower[match[0]]}'?)" if match else ""


class ConfigModel(BaseModel):
    """A section of the document: unknown keys are errors that name the key and the closest known one."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)
    # Fields added after documents were cached (a pass's parameter read for Olive's documents): left out of the dump,
    # and so of the pass's cache key, while they hold their default, so that documents that do not set them keep
    # their keys.
    added_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not self.added_fields or not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        return {key: value for key, value in data.items() if key not in self.added_fields
                or getattr(self, key) != fields[key].get_default(call_default_factory=True)}

    @classmethod
    def keys_of_fields(cls) -> dict[str, str]:
        """{key a document may write: the field it sets}: each field's name and its aliases."""
        keys = {}
        for name, field in cls.model_fields.items():
            keys[name] = name
            alias = field.validation_alias
            choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
            keys.update({choice: name for choice in choices if isinstance(choice, str)})
            if field.alias:
                keys[field.alias] = name
        return keys

    @classmethod
    def known_keys(cls) -> list[str]:
        return list(cls.keys_of_fields())

    @model_validator(mode="wrap")
    @classmethod
    def _name_unknown_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Each unknown key (pydantic's extra_forbidden) is an error of its own that names the key and the closest
        known one, reported together with the problems of the known keys."""
        try:
            return handler(data)
        except ValidationError as error:
            items = error.errors()
            if not any(_is_unknown_key(item) for item in items):
                raise
            known = cls.known_keys()
            raise ValidationError.from_exception_data(cls.__name__, [
                {"type": PydanticCustomError("unknown_key", "unknown key '{key}'{hint}",
                                             {"key": item["loc"][0], "hint": did_you_mean(str(item["loc"][0]), known)}),
                 "loc": item["loc"], "input": item["input"]} if _is_unknown_key(item) else _as_init_error(item)
                for item in items
            ]) from None


def _is_unknown_key(item: Any) -> bool:
    return item["type"] == "extra_forbidden" and len(item["loc"]) == 1


def _as_init_error(item: Any) -> InitErrorDetails:
    """A reported error, raised again as it was (its type and rendered message kept)."""
    return {"type": PydanticCustomError(item["type"], item["msg"]), "loc": item["loc"], "input": item["input"]}


class TypedSection(ConfigModel):
    """A section selected by its `type`, accepting Olive's flat and nested spellings.

    `{"type": "X", "a": 1}` and `{"type": "X", "config": {"a": 1}}` mean the same.
    """

    @model_validator(mode="before")
    @classmethod
    def _flatten_nested_config(cls, data: Any) -> Any:
        return flatten_nested(data)


def flatten_nested(data: Any) -> Any:
    """Merge `data["config"]` into `data`; a key given both ways is an error."""
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return data
    flat = {k: v for k, v in data.items() if k != "config"}
    for key, value in data["config"].items():
        if key in flat:
            raise ValueError(f"'{key}' is given both flat and under 'config'")
        flat[key] = value
    return flat
