"""The command line: flag spellings, dry runs, exit codes and one-line errors."""

import json
import shutil

import pytest
from conftest import builder_workflow


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_runs_nothing(tiny_llama, tmp_path, write_doc, cli):
    doc = write_doc(builder_workflow(tiny_llama, tmp_path, block_size=64))
    code, out, err = cli("run", "--config", doc, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == f"input model: HfModel {tiny_llama}"
    assert lines[2] == "accelerator: cpu / CPUExecutionProvider"
    assert lines[-1].startswith("  1. builder (ModelBuilder) {'precision': 'int4', 'block_size': 64}  [")
    assert lines[-1].endswith(", to run]")
    assert not (tmp_path / "out").exists() and list((tmp_path / "cache" / "entries").iterdir()) == []

    assert cli("run", "--config", doc)[0] == 0
    code, out, _ = cli("run", "--config", doc, "--dry_run")
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    key = footprint["passes"][0]["output_key"]
    assert out.splitlines()[-1].endswith(f"[{key[:12]}, cached]")


@pytest.mark.slow
def test_output_path_overrides_the_document(tiny_llama, tmp_path, write_doc, cli):
    doc = write_doc(builder_workflow(tiny_llama, tmp_path))
    code, out, _ = cli("run", "--config", doc, "--output-path", tmp_path / "elsewhere")
    assert code == 0
    assert (tmp_path / "elsewhere" / "model" / "genai_config.json").is_file()
    assert out.splitlines()[-1] == f"output: {tmp_path / 'elsewhere'}/  (model/, model_config.json, footprint.json)"


def test_model_folder_without_config_json(tmp_path, write_doc, cli):
    (tmp_path / "empty").mkdir()
    doc = write_doc(builder_workflow(tmp_path / "empty", tmp_path))
    code, _, err = cli("run", "--config", doc)
    assert code == 2
    assert err == (f"olivepress: error: {doc}:4: input_model.model_path: {tmp_path / 'empty'} is not a Hugging Face "
                   "model folder (no config.json)\n")


def test_offline_hub_id_not_in_the_local_cache_says_what_to_download(tmp_path, write_doc, cli, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code, _, err = cli("run", "--config", write_doc(builder_workflow("someorg/some-model", tmp_path)))
    assert code == 2
    assert (f"'someorg/some-model' (revision main) is not a local folder and not in the local Hugging Face cache "
            f"({tmp_path / 'hf'}), and HF_HUB_OFFLINE is set") in err
    assert "run `hf download someorg/some-model --revision main`" in err


@pytest.mark.slow
def test_hub_id_in_the_local_cache_is_found_offline(tiny_llama, tmp_path, write_doc, cli, monkeypatch):
    hub_cache = tmp_path / "hf"
    snapshot = hub_cache / "models--someorg--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_llama, snapshot)
    (hub_cache / "models--someorg--tiny" / "refs").mkdir()
    (hub_cache / "models--someorg--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub_cache))
    code, out, err = cli("run", "--config", write_doc(builder_workflow("someorg/tiny", tmp_path)), "--dry-run")
    assert code == 0, err
    assert "input model: HfModel someorg/tiny" in out and out.rstrip().endswith("to run]")
    code, _, err = cli("run", "--config", write_doc(builder_workflow("someorg/tiny", tmp_path)))
    assert code == 0, err
    assert (tmp_path / "out" / "model" / "genai_config.json").is_file()


def test_document_errors_exit_2_with_one_line_and_no_traceback(tmp_path, write_doc, cli):
    doc = write_doc({"input_model": {"type": "HfModel", "model_path": "org/m"},
                     "passes": {"b": {"type": "ModelBuilder", "precision": 4}}})
    code, out, err = cli("run", "--config", doc)
    assert code == 2 and out == ""
    line = doc.read_text().splitlines().index('      "precision": 4') + 1
    assert err == (f"olivepress: error: {doc}:{line}: passes.b.precision: "
                   "Input should be 'int4', 'int8', 'fp16', 'bf16' or 'fp32' (got 4)\n")
    code, _, err = cli("run", "--config", tmp_path / "missing.yaml")
    assert code == 2 and err == f"olivepress: error: {tmp_path / 'missing.yaml'}: no such file\n"


def test_log_level_0_shows_every_problem_and_the_traceback(tmp_path, write_doc, cli):
    doc = write_doc({"input_model": {"type": "HfModel", "model_path": "org/m"},
                     "passes": {"a": {"type": "Nope"}, "b": {"type": "ModelBuilder", "precision": "int3"}}})
    code, _, err = cli("run", "--config", doc, "--log_level", "0")
    assert code == 2
    assert "Traceback" in err
    assert "passes.a.type: unknown pass type 'Nope'" in err and "passes.b.precision" in err


def test_a_pass_that_cannot_take_the_previous_output_is_refused_before_running(tiny_llama, tmp_path, write_doc, cli):
    doc = builder_workflow(tiny_llama, tmp_path)
    doc["passes"]["again"] = {"type": "ModelBuilder"}
    path = write_doc(doc)
    code, _, err = cli("run", "--config", path)
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1) if '"again"' in text)
    assert code == 2
    assert err == (f"olivepress: error: {path}:{line}: passes.again: ModelBuilder takes hf models, but pass 'builder' "
                   "is an onnx model\n")
    assert not (tmp_path / "cache").exists()


def test_passes_lists_kinds_and_descriptions(cli):
    code, out, _ = cli("passes")
    assert code == 0
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}  # columns are space-aligned
    assert rows["ModelBuilder"].startswith("hf/onnx -> onnx Export a Hugging Face model (with its LoRA adapter, if any)")
    assert rows["MergeAdapterWeights"].startswith("hf -> hf Merge a LoRA/DoRA adapter into the base weights")
    assert rows["ExtractAdapters"].startswith("onnx -> onnx Turn the LoRA weights")
    assert len({len(line.split()[0]) + line[len(line.split()[0]):].index(line.split()[1]) for line in out.splitlines()}) == 1
