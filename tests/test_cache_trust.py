"""A cache cannot be turned against its users: entries name only paths inside themselves, damaged ones are
rebuilt or reported, nothing outside the cache reaches the output, and a shared cache is read, never written."""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cache import make_model, note_workflow

from olivepress.engine.cache import Cache
from olivepress.engine.output import write_output
from olivepress.engine.runner import Engine
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow

SECRET = b"a file from outside the cache"


class PassOnConfig(PassConfig):
    pass


class PassOn(Pass[HfModel, PassOnConfig]):
    """Like LoRA: returns its input's folder with an adapter it writes; the adapter holds a symlink to the input."""

    name = "PassOn"
    description = "Pass the input model on, with a new adapter folder."
    version = "1"
    accepts = ("hf",)
    produces = "hf"
    Config = PassOnConfig

    def run(self, model: HfModel, config: PassOnConfig, context: PassContext) -> HfModel:
        (context.output_dir / "adapter_config.json").write_text("{}")
        os.symlink(model.path / "config.json", context.output_dir / "base_config.json")
        return HfModel(path=model.path, adapter_path=context.output_dir, task=model.task)


def run_engine(write_doc, doc: dict):
    registry = PassRegistry.builtin()
    registry.add(PassOn.name, PassOn)
    return Engine(load_workflow(write_doc(doc), registry)).run()


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the cache, holding a model-like folder with a sentinel file."""
    folder = make_model(tmp_path / "outside")
    (folder / "secret.bin").write_bytes(SECRET)
    return folder


def entry_folder(cache: Path) -> Path:
    return next((cache / "entries").iterdir())


def edit_record(folder: Path, change: Callable[[dict], None]) -> None:
    record = json.loads((folder / "entry.json").read_text())
    change(record)
    (folder / "entry.json").write_text(json.dumps(record))


def resign(folder: Path) -> None:
    """Record the entry's files as they now are, as whoever tampers with a cache would, so that only the
    path rules can tell."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "entry.json":
            files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size,
                                                          "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    edit_record(folder, lambda record: record.update(files=files))


def dot_dot_path(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record["model"].update(model_path="entry:../../../outside"))
    return "entry:../../../outside"


def absolute_path(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record["model"].update(model_path=str(outside)))
    return str(outside)


def adapter_outside(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record["model"].update(adapter_path="entry:model/../../../outside"))
    return "adapter_path 'entry:model/../../../outside' resolves outside the entry"


def other_entry_path(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record["model"].update(model_path=f"cache:entries/{'b' * 64}/model"))
    return "cache:entries/"


def symlink_to_file(folder: Path, outside: Path) -> str:
    weights = folder / "model" / "model.safetensors"
    weights.unlink()
    weights.symlink_to(outside / "secret.bin")
    resign(folder)
    return "model/model.safetensors is a symlink"


def symlink_to_folder(folder: Path, outside: Path) -> str:
    (folder / "model" / "extra").symlink_to(outside, target_is_directory=True)
    resign(folder)
    return "model/extra is a symlink"


def wrong_key(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record.update(key="b" * 64))
    return "names key 'bbbb"


def broken_json(folder: Path, outside: Path) -> str:
    (folder / "entry.json").write_text('{"format": 1, "key": ')
    return "unreadable entry.json"


def wrong_format(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record.update(format=2))
    return "format 2, not 1"


def onnx_file_outside(folder: Path, outside: Path) -> str:
    edit_record(folder, lambda record: record["model"].update(onnx_file_name="../../../outside/secret.bin"))
    return "onnx_file_name '../../../outside/secret.bin' resolves outside the entry"


DAMAGE = [dot_dot_path, absolute_path, adapter_outside, other_entry_path, symlink_to_file, symlink_to_folder, wrong_key,
          broken_json, wrong_format, onnx_file_outside]


def output_files(output: Path) -> set[bytes]:
    return {path.read_bytes() for path in output.rglob("*") if path.is_file()}


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_a_damaged_entry_is_rebuilt_with_one_warning(tmp_path, write_doc, outside, damage, caplog):
    model = make_model(tmp_path / "m")
    run_engine(write_doc, note_workflow(tmp_path, model))
    folder = entry_folder(tmp_path / "cache")
    offending = damage(folder, outside)
    with caplog.at_level(logging.WARNING, logger="olivepress"):
        result = run_engine(write_doc, note_workflow(tmp_path, model))
    assert result.steps[0].cache == "miss"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(folder) in warnings[0] and offending in warnings[0]
    assert SECRET not in output_files(tmp_path / "out")
    assert (tmp_path / "out" / "model" / "NOTE.txt").read_text() == "hello"
    assert json.loads((folder / "entry.json").read_text())["model"]["model_path"] == "entry:model"


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_cache_verify_reports_and_removes_a_damaged_entry(tmp_path, write_doc, outside, damage, cli):
    model = make_model(tmp_path / "m")
    run_engine(write_doc, note_workflow(tmp_path, model))
    run_engine(write_doc, note_workflow(tmp_path, model, "intact"))
    folder = entry_folder(tmp_path / "cache")
    offending = damage(folder, outside)
    code, out, _ = cli("cache", "verify", "--cache_dir", tmp_path / "cache")
    assert code == 1 and f"{folder.name[:12]}  damaged: " in out and offending in out
    assert "1 entries intact, 1 damaged" in out
    assert not os.path.lexists(folder) and outside.joinpath("secret.bin").read_bytes() == SECRET


def test_a_pass_that_passes_its_input_on_makes_a_self_contained_entry(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    doc = {**note_workflow(tmp_path, model), "passes": {"on": {"type": "PassOn"}}}
    first = run_engine(write_doc, doc)
    folder = tmp_path / "cache" / "entries" / first.steps[0].output_key
    record = json.loads((folder / "entry.json").read_text())
    assert record["model"]["model_path"] == "entry:inputs/model" and record["model"]["adapter_path"] == "entry:model"
    assert not (folder / "model" / "base_config.json").is_symlink()  # the pass's symlink, replaced by what it named
    assert (folder / "model" / "base_config.json").read_text() == (model / "config.json").read_text()
    assert (folder / "inputs" / "model" / "model.safetensors").read_bytes() == b"weights"
    assert cli("cache", "verify", "--cache_dir", tmp_path / "cache")[0] == 0
    assert run_engine(write_doc, doc).steps[0].cache == "hit"
    assert (tmp_path / "out" / "model" / "model.safetensors").read_bytes() == b"weights"
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").read_text() == "{}"


def test_output_is_not_copied_through_a_symlink(tmp_path, outside):
    source = make_model(tmp_path / "entry" / "model")
    (source / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OlivepressError, match="extra is a symlink"):
        write_output(tmp_path / "out", HfModel(source), {})
    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".out")] == []  # no staging left


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder`, with a file's bytes: what 'unchanged' means for a shared cache."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def shared_workflow(tmp_path: Path, model: Path, note: str) -> dict:
    doc = note_workflow(tmp_path, model, note, cache="private")
    doc["engine"]["shared_cache_dir"] = str(tmp_path / "shared")
    return doc


def test_a_shared_cache_serves_hits_and_takes_no_writes(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    built = run_engine(write_doc, note_workflow(tmp_path, model, "shared", cache="shared"))
    before = tree(tmp_path / "shared")
    hit = run_engine(write_doc, shared_workflow(tmp_path, model, "shared"))
    assert hit.steps[0].cache == "hit" and hit.steps[0].output_key == built.steps[0].output_key
    assert (tmp_path / "out" / "model" / "NOTE.txt").read_text() == "shared"
    miss = run_engine(write_doc, shared_workflow(tmp_path, model, "mine"))
    assert miss.steps[0].cache == "miss"
    assert [path.name for path in (tmp_path / "private" / "entries").iterdir()] == [miss.steps[0].output_key]
    assert tree(tmp_path / "shared") == before


def test_a_damaged_shared_entry_is_not_used_and_not_touched(tmp_path, write_doc, outside, caplog):
    model = make_model(tmp_path / "m")
    run_engine(write_doc, note_workflow(tmp_path, model, "shared", cache="shared"))
    folder = entry_folder(tmp_path / "shared")
    dot_dot_path(folder, outside)
    before = tree(tmp_path / "shared")
    with caplog.at_level(logging.WARNING, logger="olivepress"):
        result = run_engine(write_doc, shared_workflow(tmp_path, model, "shared"))
    assert result.steps[0].cache == "miss" and "not using it" in caplog.text and str(folder) in caplog.text
    assert SECRET not in output_files(tmp_path / "out")
    assert tree(tmp_path / "shared") == before
    assert (tmp_path / "private" / "entries" / folder.name).is_dir()


def test_a_missing_shared_cache_is_an_error(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    code, _, err = cli("run", "--config", write_doc(shared_workflow(tmp_path, model, "x")))
    assert code == 2 and f"engine.shared_cache_dir: {tmp_path / 'shared'} is not a folder" in err
    doc = note_workflow(tmp_path, model)
    doc["engine"]["shared_cache_dir"] = doc["engine"]["cache_dir"]
    Cache(tmp_path / "cache")
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2 and "is engine.cache_dir; the shared cache is never written" in err
