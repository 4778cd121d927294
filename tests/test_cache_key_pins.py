"""Cache keys of existing documents must not change when the code around them is reorganised.

The pins were taken before the layering refactor; library versions are fixed here so that the pins
follow olivepress's own key derivation, not the installed packages.
"""

import json

import pytest

from olivepress.engine.runner import Engine
from olivepress.models.resolve import resolve_input_model
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow

FIXED_LIBRARIES = {"torch": "2.13.0", "transformers": "5.23.0", "peft": "0.21.2", "onnx": "1.19.0",
                   "onnxruntime": "1.32.0", "onnxruntime-genai": "0.18.0"}

PINS = {
    # ModelBuilder version 3: tied quantized embeddings shaped for onnxruntime (issue 15); the keys with the earlier
    # versions are the earlier pins (checked when the versions were raised)
    "builder": ["d45e9a20745e0934fd29fe9f6a73f20b53b8d01d89d9696d5a46d57bccff972a"],
    "lora_then_builder": ["61a579aa7f89870baa5a5c2ae1f8c9d74f1e1d1f6742711ff70d1a2ed1b0f894",
                          "78012176af5a1aa512804561638e4237c29da434cde9121024517bbfe5b778ed"],
    # AWQ version 4: a quantized LM head rounded with GPTQ (issue 17); version 3's keys were 0b8ea924..., 1caa2df1...
    "awq_gpu": ["c4ee7c6c41e08834f36f421078a0ef994161579fd21855a961d9a17a7ec086f2",
                "e5104aecf2614a5505bb6f60f4caa1b05d8d7a967373559d68cb8d0dbcb5f523"],
}


@pytest.fixture
def fixed_libraries(monkeypatch):
    import olivepress.engine.keys as keys_module

    monkeypatch.setattr(keys_module, "library_versions", lambda: FIXED_LIBRARIES)


def _model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    return folder


def _documents(tmp_path):
    model = str(_model_folder(tmp_path))
    data_file = tmp_path / "train.jsonl"
    data_file.write_text('{"text": "a pinned record"}\n{"text": "and another"}\n', encoding="utf-8")
    engine = {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}
    data = [{"name": "train", "type": "HuggingfaceContainer",
             "load_dataset_config": {"data_name": "json", "data_files": data_file.name},
             "pre_process_data_config": {"text_cols": ["text"], "max_seq_len": 32}}]
    return {
        "builder": {"input_model": {"type": "HfModel", "model_path": model},
                    "passes": {"b": {"type": "ModelBuilder", "precision": "int4", "block_size": 32}},
                    "engine": engine},
        "lora_then_builder": {"input_model": {"type": "HfModel", "model_path": model}, "data_configs": data,
                              "passes": {"lora": {"type": "LoRA", "config": {"lora_r": 4, "train_data_config": "train",
                                                                              "training_args": {"max_steps": 3}}},
                                         "b": {"type": "ModelBuilder", "precision": "fp32"}},
                              "engine": engine},
        "awq_gpu": {"input_model": {"type": "HfModel", "model_path": model},
                    "systems": {"local": {"type": "LocalSystem", "accelerators": [{"device": "gpu"}]}},
                    "passes": {"q": {"type": "AWQ", "group_size": 32}, "b": {"type": "ModelBuilder"}},
                    "engine": {**engine, "target": "local"}},
    }


@pytest.mark.parametrize("name", sorted(PINS))
def test_cache_keys_of_existing_documents_stay(name, tmp_path, write_doc, fixed_libraries, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the data file's path is part of its data config, so it is written relative
    workflow = load_workflow(write_doc(_documents(tmp_path)[name]), PassRegistry.default())
    engine = Engine(workflow)
    keys = [key for _, key, _ in engine.predicted_keys(resolve_input_model(workflow.config.input_model))]
    assert keys == PINS[name]
