"""Every problem of a document at once: in document order, at the key as written, with local files checked, and
never a traceback whatever value stands anywhere."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from olivepress.passes.registry import PassRegistry

GOLDEN = Path(__file__).parent / "golden" / "migration"
LOCATED = re.compile(r"^olivepress: error: (\S+?):(\d+): (\S+): \S.*$")
ODD_VALUES = ([], {}, 7, "x", None, True, [1, "a"], {"a": [1]})

CURRENT = {
    "input_model": {"type": "HfModel", "model_path": "org/model"},
    "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "cpu"}]},
                "env": {"type": "PythonEnvironment", "python_environment_path": "/usr"}},
    "data_configs": [{"name": "d", "load_dataset_config": {"data_name": "org/data", "split": "train"},
                      "pre_process_data_config": {"max_seq_len": 64}}],
    "evaluators": {"e": {"metrics": [{"name": "size", "type": "size_on_disk",
                                      "sub_types": [{"name": "bytes", "priority": 1}]}]}},
    "passes": {"lora": {"type": "LoRA", "config": {"lora_r": 8, "train_data_config": "d"}},
               "builder": {"type": "ModelBuilder", "precision": "int4"}},
    "engine": {"target": "local", "evaluator": "e", "cache_dir": "c", "output_dir": "o",
               "search_strategy": {"execution_order": "joint", "sampler": "sequential"}},
}


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every key and list item of a document, by its path."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += places(item, (*path, index))
    return found


def put(document: dict, path: tuple, value: Any) -> dict:
    changed = copy.deepcopy(document)
    holder = changed
    for element in path[:-1]:
        holder = holder[element]
    holder[path[-1]] = value
    return changed


OLDER = {
    "input_model": {"type": "PyTorchModel", "config": {"hf_config": {"model_name": "org/m", "task": "text-generation",
                                                                     "model_loading_args": {"trust_remote_code": True}}}},
    "data_configs": [{"name": "d", "type": "HuggingfaceContainer",
                      "components": {"dataloader": {"params": {"shuffle": True}}},
                      "params_config": {"data_name": "org/data", "split": "train", "batch_size": 2,
                                        "component_kwargs": {"pre_process_data": {"source_max_len": 64}}}}],
    "passes": {"builder": {"type": "ModelBuilder", "disable_search": True, "config": {"precision": "int4"}},
               "int4": {"type": "OnnxMatMul4Quantizer", "config": {"block_size": "DEFAULT_VALUE"}}},
    "pass_flows": [["builder"], ["builder", "int4"]],
    "metrics": [{"name": "size", "type": "size_on_disk"}],
    "auto_optimizer_config": {"disable_auto_optimizer": True},
    "engine": {"output_name": "phi", "output_dir": "out", "execution_providers": ["CPUExecutionProvider"],
               "search_strategy": {"search_algorithm": "exhaustive", "search_algorithm_config": {"num_samples": 2}},
               "packaging_config": {"type": "Zipfile"}},
}
DOCUMENTS = {"current": CURRENT, "older": OLDER, "cookbook": json.loads((GOLDEN / "cookbook-phi3-finetune.json").read_text()),
             "olive-0.6": json.loads((GOLDEN / "olive-0.6-engine.json").read_text())}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_any_value_anywhere_is_a_located_error_line_never_a_traceback(name, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry = PassRegistry.default()  # looked up once: finding the installed plugins takes most of a validation
    monkeypatch.setattr(PassRegistry, "default", classmethod(lambda cls: registry))
    document = DOCUMENTS[name]
    # every place gets two of the odd values, in turn, so that every value reaches every kind of place
    cases = [(path, ODD_VALUES[(index + shift) % len(ODD_VALUES)])
             for index, path in enumerate(places(document)) for shift in (0, 3)]
    cases += [((key,), value) for key in ("passes", "systems", "engine", "evaluators", "data_configs", "input_model",
                                          "pass_flows", "metrics", "target") for value in ODD_VALUES]
    refused = 0
    for path, value in cases:
        doc = tmp_path / "w.json"
        doc.write_text(json.dumps(put(document, path, value), indent=2))
        code, _, err = cli("validate", "--config", doc)
        assert code in (0, 2), (path, value, err)
        assert "unexpected" not in err and "Traceback" not in err, (path, value, err)
        lines = err.splitlines()
        assert (code == 0) == (lines == []), (path, value, err)
        for line in lines:
            assert LOCATED.match(line) or line.startswith("olivepress: error: ... and "), (path, value, line)
        refused += code == 2
    assert refused > len(cases) // 2  # most odd values are refused


def test_every_problem_of_every_stage_in_document_order_at_the_key_as_written(cli, write_doc):
    document = copy.deepcopy(CURRENT)
    document["outptu_dir"] = "o"
    document["input_model"]["task"] = 3
    document["systems"]["env"]["python_environment_path"] = "/no/such/env"
    document["passes"]["lora"]["config"].update(lora_r="eight", lora_dropuot=0.1)
    document["passes"]["builder"]["block_size"] = [16, 32]
    document["engine"]["evaluator"] = "ee"
    doc = write_doc(document)
    code, out, err = cli("validate", "--config", doc)
    text = doc.read_text().splitlines()

    def line(fragment: str) -> int:
        return next(number for number, content in enumerate(text, 1) if fragment in content)

    assert code == 2 and out == ""
    assert err.splitlines() == [f"olivepress: error: {doc}:{number}: {message}" for number, message in [
        (line('"task": 3'), "input_model.task: Input should be a valid string (got 3)"),
        (line('"python_environment_path"'), "systems.env.python_environment_path: /no/such/env: no such folder"),
        (line('"lora_r"'), "passes.lora.config.lora_r: Input should be a valid integer, unable to parse string as "
                           "an integer (got 'eight')"),
        (line('"lora_dropuot"'), "passes.lora.config.lora_dropuot: unknown key 'lora_dropuot' (did you mean "
                                 "'lora_dropout'?)"),
        (line('"block_size"'), "passes.builder.block_size: a list of values is a search: give one value, or list them "
                               "in engine.search_strategy.search_space.builder.block_size (with engine.evaluator to "
                               "compare them)"),
        (line('"evaluator": "ee"'), "engine.evaluator: no evaluator named 'ee' in 'evaluators' (did you mean 'e'?)"),
        (line('"outptu_dir"'), "outptu_dir: unknown key 'outptu_dir' (did you mean 'output_dir'?)"),
    ]]


def test_many_problems_are_capped_with_a_count_and_all_shown_at_log_level_0(cli, write_doc):
    document = copy.deepcopy(CURRENT)
    document["passes"] = {f"p{index}": {"type": "ModelBuilder", "precision": "int3"} for index in range(25)}
    doc = write_doc(document)
    code, _, err = cli("validate", "--config", doc)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 21
    assert lines[0].endswith("passes.p0.precision: Input should be 'int4', 'int8', 'fp16', 'bf16' or 'fp32' (got 'int3')")
    assert lines[-1] == "olivepress: error: ... and 5 more"
    code, _, err = cli("validate", "--config", doc, "--log_level", "0")
    assert sum(line.startswith("olivepress: error: ") for line in err.splitlines()) == 25


def test_validate_finds_the_local_files_run_would_miss(cli, write_doc, tmp_path, tiny_llama):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama), "adapter_path": "no-adapter"},
        "systems": {"aml": {"type": "AzureML", "aml_compute": "c",
                            "aml_docker_config": {"build_context_path": "ctx", "conda_file_path": "env.yaml"}}},
        "data_configs": [{"name": "d", "user_script": "missing.py", "script_dir": "scripts",
                          "load_dataset_config": {"data_name": "json", "data_files": "train-*.jsonl"}}],
        "engine": {"target": "aml"},
    }
    doc = write_doc(document)
    code, _, err = cli("validate", "--config", doc)
    assert code == 2
    messages = [line.split(": ", 3)[3] for line in err.splitlines()]
    assert "input_model.adapter_path: no-adapter is not a PEFT adapter folder (no adapter_config.json)" in messages
    assert "systems.aml.aml_docker_config.build_context_path: ctx: no such folder" in messages
    assert "systems.aml.aml_docker_config.conda_file_path: env.yaml: no such file" in messages
    assert "data_configs[0].load_dataset_config.data_files: data file not found: no file matches train-*.jsonl" \
        in messages
    assert "data_configs[0].user_script: missing.py: no such file" in messages
    assert "data_configs[0].script_dir: scripts: no such folder" in messages


@pytest.mark.parametrize(("model_path", "kind"), [("models/m.onnx", "file"), ("models/m", "folder")])
def test_a_missing_onnx_model_is_no_such_file_or_folder(cli, write_doc, model_path, kind):
    doc = write_doc({"input_model": {"type": "ONNXModel", "config": {"model_path": model_path}}})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2
    assert err.strip().endswith(f"input_model.model_path: {model_path}: no such {kind}")


def test_hub_and_azureml_references_are_checked_for_shape_only(cli, write_doc):
    document = {"input_model": {"type": "HfModel", "model_path": "azureml://registries/r/models/m/versions/1"},
                "data_configs": [{"name": "d", "load_dataset_config": {
                    "data_name": "json", "data_files": "azureml://datastores/d/paths/train.jsonl"}}]}
    code, out, err = cli("validate", "--config", write_doc(document))
    assert code == 0, err
    code, out, err = cli("validate", "--config", write_doc({"input_model": {"type": "HfModel",
                                                                            "model_path": "org/not-downloaded"}}))
    assert code == 0, err


def test_a_list_for_a_parameter_that_takes_a_list_is_checked_as_a_value_not_called_a_search(cli, write_doc):
    doc = write_doc({"input_model": {"type": "HfModel", "model_path": "org/m"},
                     "passes": {"conversion": {"type": "OnnxConversion"},
                                "surgeries": {"type": "GraphSurgeries",
                                              "surgeries": [{"surgeon": "TieWordEmbedding"}]}}})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2
    assert "passes.surgeries.surgeries" in err and "unknown surgeon 'TieWordEmbedding'" in err
    assert "a list of values is a search" not in err
