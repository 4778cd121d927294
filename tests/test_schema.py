"""The checked-in JSON Schema is current, and it accepts and rejects what the loader does."""

from pathlib import Path

import jsonschema
import pytest

from olivepress.cli.schema import schema_text
from olivepress.config.schema import workflow_schema
from olivepress.passes.registry import PassRegistry

SCHEMA_FILE = Path(__file__).parent.parent / "schemas" / "workflow.schema.json"


def test_checked_in_schema_is_current():
    assert SCHEMA_FILE.read_text() == schema_text(PassRegistry.builtin()), (
        "schemas/workflow.schema.json is stale: run `olivepress schema --builtin-only -o schemas/workflow.schema.json`"
    )


@pytest.fixture(scope="module")
def validator():
    schema = workflow_schema(PassRegistry.builtin())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


BASE = {"input_model": {"type": "HfModel", "model_path": "m"}}


@pytest.mark.parametrize("passes", [
    {"b": {"type": "ModelBuilder", "precision": "int4", "block_size": 32}},
    {"b": {"type": "ModelBuilder", "config": {"precision": "fp16"}}},
])
def test_schema_accepts_flat_and_nested_passes(validator, passes):
    assert list(validator.iter_errors({**BASE, "passes": passes})) == []


@pytest.mark.parametrize("passes", [
    {"b": {"type": "ModelBuilder", "precision": "int3"}},
    {"b": {"type": "ModelBuilder", "blok_size": 32}},
    {"b": {"type": "NoSuchPass"}},
])
def test_schema_rejects_bad_pass_parameters(validator, passes):
    assert list(validator.iter_errors({**BASE, "passes": passes}))


def test_schema_rejects_unknown_section_keys(validator):
    assert list(validator.iter_errors({**BASE, "engine": {"outptu_dir": "x"}}))
