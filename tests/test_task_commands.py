"""The task commands' plumbing: flags -> workflow document, data references, olivepress output folders as inputs."""

import json

import pytest

from olivepress.cli.finetune import parse_passthrough
from olivepress.config.errors import DocumentError
from olivepress.config.source import SourceDocument
from olivepress.errors import OlivepressError
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import validate_document

TRAVEL_TEMPLATE = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"


def test_passthrough_flags_become_typed_training_arguments():
    assert parse_passthrough(["--warmup_steps", "5", "--bf16", "--lr-scheduler-type=cosine", "--weight_decay", "0.1"]) == {
        "warmup_steps": 5, "bf16": True, "lr_scheduler_type": "cosine", "weight_decay": 0.1,
    }
    with pytest.raises(OlivepressError, match="unexpected argument 'stray'"):
        parse_passthrough(["stray"])


def test_finetune_writes_the_workflow_it_runs(cli, tiny_llama, tmp_path):
    """The template is typed as in the Olive lab, with backslash-n in a double-quoted shell string."""
    saved = tmp_path / "finetune.json"
    (tmp_path / "train.jsonl").write_text('{"prompt": "Hi?", "response": "Hello."}\n')
    code, out, err = cli(
        "finetune", "--method", "dora", "-m", tiny_llama, "--data_files", tmp_path / "train.jsonl",
        "--text_template", TRAVEL_TEMPLATE.replace("\n", "\\n"), "--max_steps", "3", "--lora_r", "4",
        "--target_modules", "q_proj,o_proj",
        "--warmup_steps", "1", "--output_path", tmp_path / "out", "--save_config", saved, "--dry_run",
    )
    document = json.loads(saved.read_text())
    assert document["data_configs"] == [{
        "name": "data", "type": "HuggingfaceContainer",
        "load_dataset_config": {"params": {"data_name": "json", "data_files": str(tmp_path / "train.jsonl")}},
        "pre_process_data_config": {"params": {"text_template": TRAVEL_TEMPLATE}},
    }]
    assert document["passes"] == {"dora": {
        "type": "DoRA", "r": 4, "target_modules": ["q_proj", "o_proj"], "train_data_config": "data",
        "training_args": {"max_steps": 3, "warmup_steps": 1},
    }}
    assert code == 0, err
    assert "1. dora (DoRA)" in out


def test_finetune_needs_data(cli, tiny_llama, tmp_path):
    code, _, err = cli("finetune", "-m", tiny_llama, "-o", tmp_path / "out")
    assert code == 2
    assert "no training data: give --data_name and --data_files, or --data_config FILE" in err


def test_unknown_flags_are_refused_where_nothing_passes_them_through(cli, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli("run", "--config", tmp_path / "w.json", "--warmup_steps", "3")
    assert exit_info.value.code == 2


def test_quantize_builds_a_calibrated_pass(cli, tiny_llama, tmp_path):
    data = tmp_path / "calib.yaml"
    data.write_text(f"load_dataset_config:\n  data_name: json\n  data_files: {tmp_path / 'calib.jsonl'}\n")
    (tmp_path / "calib.jsonl").write_text('{"text": "Some calibration text."}\n')
    saved = tmp_path / "quantize.json"
    code, _, err = cli("quantize", "-m", tiny_llama, "--algorithm", "gptq", "--group_size", "32",
                       "--data_config", data, "-o", tmp_path / "out", "--save_config", saved, "--dry_run")
    assert code == 0, err
    document = json.loads(saved.read_text())
    assert document["passes"] == {"gptq": {"type": "GPTQ", "bits": 4, "group_size": 32, "lm_head": True,
                                           "embeds": "tied", "data_config": "data"}}
    expected = {"data_name": "json", "data_files": str(tmp_path / "calib.jsonl")}
    assert document["data_configs"][0]["load_dataset_config"] == expected

    code, _, err = cli("quantize", "-m", tiny_llama, "--algorithm", "awq", "--float_lm_head", "-o", tmp_path / "out",
                       "--save_config", saved, "--dry_run")
    assert code == 0, err
    assert json.loads(saved.read_text())["passes"] == {"awq": {"type": "AWQ", "bits": 4}}


def _validate(document: dict):
    return validate_document(SourceDocument(data=document, file="w.json"), PassRegistry.builtin())


def test_a_pass_naming_a_missing_data_config_is_refused(tiny_llama):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "data_configs": [{"name": "travel", "load_dataset_config": {"data_name": "json", "data_files": "t.jsonl"}}],
        "passes": {"lora": {"type": "LoRA", "config": {"train_data_config": "travle"}}},
    }
    with pytest.raises(DocumentError) as error:
        _validate(document)
    assert str(error.value) == (
        "w.json: passes.lora.config.train_data_config: no data config named 'travle' in 'data_configs' "
        "(did you mean 'travel'?)"
    )


def test_data_component_params_are_typed_flat_or_nested():
    base = {"input_model": {"type": "HfModel", "model_path": "x"}}
    files = {"data_name": "json", "data_files": "a.jsonl"}
    flat = _validate({**base, "data_configs": [{"name": "d", "load_dataset_config": files}]})
    nested = _validate({**base, "data_configs": [{"name": "d", "load_dataset_config": {"params": files}}]})
    assert flat.config.data_configs == nested.config.data_configs
    load = {"data_name": "json", "data_files": "a.jsonl"}
    with pytest.raises(DocumentError, match=r"data_configs\[0\]\.pre_process_data_config\.text_templat: "
                                            r"unknown key 'text_templat' \(did you mean 'text_template'\?\)"):
        _validate({**base, "data_configs": [{"name": "d", "load_dataset_config": load,
                                             "pre_process_data_config": {"text_templat": "{a}"}}]})
    with pytest.raises(DocumentError, match="data config name 'd' is used twice"):
        _validate({**base, "data_configs": [{"name": "d", "load_dataset_config": load}] * 2})


def test_an_output_folder_stands_for_its_model_and_adapter(tmp_path, tiny_llama):
    import shutil

    from olivepress.config.sections import HfModelConfig
    from olivepress.models.resolve import resolve_input_model

    out = tmp_path / "ft"
    shutil.copytree(tiny_llama, out / "model")
    (out / "adapter").mkdir()
    (out / "adapter" / "adapter_config.json").write_text("{}")
    (out / "model_config.json").write_text("{}")
    model = resolve_input_model(HfModelConfig(type="HfModel", model_path=str(out)))
    assert (model.path, model.adapter_path) == ((out / "model").resolve(), (out / "adapter").resolve())


def test_data_contents_are_part_of_the_pass_key(tiny_llama, tmp_path):
    from olivepress.engine.runner import Engine
    from olivepress.models.handles import HfModel

    data_file = tmp_path / "train.jsonl"
    data_file.write_text('{"text": "one"}\n')
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "data_configs": [{"name": "train", "load_dataset_config": {"data_name": "json", "data_files": str(data_file)}}],
        "passes": {"lora": {"type": "LoRA", "train_data_config": "train"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }

    def key(doc) -> str:
        [(_, predicted, _)] = Engine(_validate(doc)).predicted_keys(HfModel(path=tiny_llama))
        return predicted

    first = key(document)
    renamed = {**document, "data_configs": [{**document["data_configs"][0], "name": "travel"}],
               "passes": {"lora": {"type": "LoRA", "train_data_config": "travel"}}}
    assert key(renamed) == first  # names are not in the key
    data_file.write_text('{"text": "two"}\n')
    assert key(document) != first


def test_an_unknown_component_type_is_refused_at_load():
    with pytest.raises(DocumentError,
                       match=r"data_configs\[0\]\.load_dataset_config\.type: 'my_loader' is not a built-in component "
                             r"\(huggingface_dataset\); it names a function of user_script, which the data config does not "
                             r"give"):
        _validate({"input_model": {"type": "HfModel", "model_path": "x"},
                   "data_configs": [{"name": "d", "load_dataset_config": {"type": "my_loader", "data_name": "json"}}]})


def test_every_example_workflow_validates_in_the_current_shape():
    from pathlib import Path

    from olivepress.workflow.loader import load_workflow

    examples = sorted((Path(__file__).parent.parent / "workflows").rglob("*.json"))
    assert len(examples) >= 4
    for example in examples:
        workflow = load_workflow(example, PassRegistry.builtin())
        assert workflow.steps and workflow.rewrites == [], example
