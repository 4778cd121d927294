"""Cache keys, atomic publishing, damaged entries, interrupted runs, and moving the cache."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from olivepress.engine import keys
from olivepress.engine.cache import Cache
from olivepress.engine.runner import Engine
from olivepress.hardware import Accelerator
from olivepress.hashing import FingerprintMemo
from olivepress.models.handles import HfModel
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow

PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"
sys.path.insert(0, str(PLUGIN_DIR))
ADD_NOTE = "olivepress_demo_plugin:AddNote"
CPU = Accelerator("cpu", "CPUExecutionProvider")


def make_model(folder: Path, weights: bytes = b"weights") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def note_workflow(tmp_path: Path, model: Path, note: str = "hello", cache: str = "cache") -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": {"note": {"type": ADD_NOTE, "note": note}},
        "engine": {"cache_dir": str(tmp_path / cache), "output_dir": str(tmp_path / "out")},
    }


def run_engine(write_doc, doc):
    return Engine(load_workflow(write_doc(doc), PassRegistry.builtin())).run()


# ------------------------------------------------------------------ keys


def step_config(note="hello", **extra):
    from olivepress_demo_plugin import AddNote

    return AddNote, AddNote.Config(note=note, **extra)


def test_model_key_follows_contents_not_location(tmp_path):
    memo = FingerprintMemo(tmp_path / "memo.sqlite")
    first = make_model(tmp_path / "a")
    key = keys.model_key(HfModel(first), memo)
    moved = shutil.copytree(first, tmp_path / "b")
    assert keys.model_key(HfModel(moved), memo) == key
    os.utime(moved / "model.safetensors", (1, 1))  # touched, same bytes
    assert keys.model_key(HfModel(moved), memo) == key
    (moved / "model.safetensors").write_bytes(b"weightz")
    assert keys.model_key(HfModel(moved), memo) != key
    assert keys.model_key(HfModel(first, load_kwargs={"trust_remote_code": True}), memo) != key
    (first / "extra.txt").write_text("x")
    assert keys.model_key(HfModel(first), memo) != key


def test_pass_key_changes_with_everything_that_shapes_the_output(monkeypatch):
    pass_class, config = step_config()
    base = keys.pass_key("a" * 64, pass_class, config, CPU)
    assert len(base) == 64 and int(base, 16) >= 0
    assert keys.pass_key("b" * 64, pass_class, config, CPU) != base
    assert keys.pass_key("a" * 64, pass_class, step_config("other")[1], CPU) != base
    assert keys.pass_key("a" * 64, pass_class, config, Accelerator("gpu", "CUDAExecutionProvider")) != base
    assert keys.pass_key("a" * 64, pass_class, config, CPU, {"train": "f" * 64}) != base
    monkeypatch.setattr(pass_class, "version", "2")
    assert keys.pass_key("a" * 64, pass_class, config, CPU) != base
    monkeypatch.setattr(pass_class, "version", "1")
    versions = dict(keys.library_versions())
    monkeypatch.setattr(keys, "library_versions", lambda: {**versions, "onnxruntime": "0.0.1"})
    assert keys.pass_key("a" * 64, pass_class, config, CPU) != base


def test_pass_key_ignores_spelling_and_defaults():
    pass_class, config = step_config()
    assert keys.pass_key("a" * 64, pass_class, pass_class.Config(), CPU) == keys.pass_key("a" * 64, pass_class, config, CPU)


def test_pass_key_ignores_names_and_places(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    doc = note_workflow(tmp_path, model)
    renamed = {**doc, "passes": {"other_name": doc["passes"]["note"]},
               "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "elsewhere"),
                          "log_severity_level": 0}}
    first = run_engine(write_doc, doc)
    second = run_engine(write_doc, renamed)
    assert second.steps[0].output_key == first.steps[0].output_key
    assert second.steps[0].cache == "hit"


# ------------------------------------------------------------------ the engine with the cache


def test_run_writes_output_and_second_run_hits(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    first = run_engine(write_doc, note_workflow(tmp_path, model, "travel"))
    assert first.steps[0].cache == "miss"
    out = tmp_path / "out"
    assert (out / "model" / "NOTE.txt").read_text() == "travel"
    footprint = json.loads((out / "footprint.json").read_text())
    step = footprint["passes"][0]
    assert step["cache"] == "miss" and step["config"] == {"note": "travel"} and step["type"] == "AddNote"
    assert step["input_key"] == footprint["input_model"]["key"] and step["output_key"] == footprint["output_model"]["key"]
    assert json.loads((out / "model_config.json").read_text()) == {
        "type": "HfModel",
        "config": {"model_path": "model", "adapter_path": None, "task": "text-generation", "load_kwargs": {}},
    }
    second = run_engine(write_doc, note_workflow(tmp_path, model, "travel"))
    assert second.steps[0].cache == "hit"
    assert second.steps[0].output_key == first.steps[0].output_key


def test_entries_store_relative_paths_so_the_cache_can_move(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    first = run_engine(write_doc, note_workflow(tmp_path, model))
    entry_file = next((tmp_path / "cache" / "entries").glob("*/entry.json"))
    assert json.loads(entry_file.read_text())["model"]["model_path"] == "entry:model"
    shutil.move(tmp_path / "cache", tmp_path / "moved")
    second = run_engine(write_doc, note_workflow(tmp_path, model, cache="moved"))
    assert second.steps[0].cache == "hit" and second.steps[0].output_key == first.steps[0].output_key
    assert (tmp_path / "out" / "model" / "NOTE.txt").read_text() == "hello"


def test_damaged_entry_is_detected_and_rebuilt(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    first = run_engine(write_doc, note_workflow(tmp_path, model))
    note = tmp_path / "cache" / "entries" / first.steps[0].output_key / "model" / "NOTE.txt"
    note.write_text("hellO")  # same size, new content and mtime
    second = run_engine(write_doc, note_workflow(tmp_path, model))
    assert second.steps[0].cache == "miss"
    assert note.read_text() == "hello"
    (note.parent / "config.json").unlink()
    assert run_engine(write_doc, note_workflow(tmp_path, model)).steps[0].cache == "miss"


def test_cache_verify_rehashes_and_finds_silent_damage(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    first = run_engine(write_doc, note_workflow(tmp_path, model))
    note = tmp_path / "cache" / "entries" / first.steps[0].output_key / "model" / "NOTE.txt"
    code, out, _ = cli("cache", "verify", "--cache_dir", tmp_path / "cache")
    assert code == 0 and "1 entries intact, 0 damaged" in out
    stat = note.stat()
    note.write_text("jello")  # bit rot: same size and mtime, so only a rehash sees it
    os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, out, _ = cli("cache", "verify", "--cache-dir", tmp_path / "cache")
    assert code == 1 and "NOTE.txt changed content" in out and "0 entries intact, 1 damaged" in out
    code, out, _ = cli("cache", "ls", "--cache_dir", tmp_path / "cache")
    assert out == ""


def test_cache_clean_empties_the_cache(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    run_engine(write_doc, note_workflow(tmp_path, model))
    code, out, _ = cli("cache", "clean", "--cache_dir", tmp_path / "cache")
    assert code == 0 and out.strip() == f"emptied {(tmp_path / 'cache').resolve()}"
    assert list((tmp_path / "cache" / "entries").iterdir()) == []
    assert run_engine(write_doc, note_workflow(tmp_path, model)).steps[0].cache == "miss"


def test_failed_pass_leaves_nothing(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    code, _, err = cli("run", "--config", write_doc(note_workflow(tmp_path, model, "fail")))
    assert code == 1
    assert err.strip() == "olivepress: error: pass 'note' failed: ValueError: asked to fail"
    cache = tmp_path / "cache"
    assert list((cache / "entries").iterdir()) == [] and list((cache / "staging").iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_killed_run_leaves_no_entry_and_the_next_run_succeeds(tmp_path, write_doc):
    model = make_model(tmp_path / "m", weights=b"w" * 1_000_000)
    doc_path = write_doc(note_workflow(tmp_path, model))
    env = {**os.environ, "OLIVEPRESS_DEMO_SLEEP": "60", "PYTHONPATH": str(PLUGIN_DIR)}
    process = subprocess.Popen([sys.executable, "-m", "olivepress", "run", "--config", str(doc_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / "cache" / "staging"
    deadline = time.time() + 60
    while not list(staging.glob("*/model/model.safetensors")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(staging.glob("*/model/model.safetensors")), "the pass never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    cache = Cache(tmp_path / "cache")
    assert cache.entries() == [] and cache.lookup(next(staging.iterdir()).name.split("-")[0]) is None
    assert not (tmp_path / "out").exists()
    result = run_engine(write_doc, note_workflow(tmp_path, model))
    assert result.steps[0].cache == "miss"
    assert (tmp_path / "out" / "model" / "NOTE.txt").read_text() == "hello"
    assert list(staging.iterdir()) == []  # the new writer of that key removed the leftovers


def test_gc_removes_leftovers_of_dead_writers_only(tmp_path):
    cache = Cache(tmp_path / "cache")
    leftover = cache.new_staging("a" * 64)
    (leftover / "half.bin").write_bytes(b"x")
    assert cache.gc() == [leftover.name]
    assert not leftover.exists()


def test_output_dir_with_foreign_files_is_refused_before_running(tmp_path, write_doc, cli):
    model = make_model(tmp_path / "m")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("mine")
    code, _, err = cli("run", "--config", write_doc(note_workflow(tmp_path, model)))
    assert code == 2 and "is not empty and holds no footprint.json" in err
    assert (tmp_path / "out" / "precious.txt").read_text() == "mine"
    assert list((tmp_path / "cache" / "entries").iterdir()) == []


def test_clean_cache_empties_before_running(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    run_engine(write_doc, note_workflow(tmp_path, model))
    doc = note_workflow(tmp_path, model)
    doc["engine"]["clean_cache"] = True
    assert run_engine(write_doc, doc).steps[0].cache == "miss"
