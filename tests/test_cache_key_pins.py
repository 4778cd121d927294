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
    "builder": ["9fd369b2ffbf0d6646c8bd4b223891684145ba7263cdb277feda3592a38e2917"],
    "lora_then_builder": ["61a579aa7f89870baa5a5c2ae1f8c9d74f1e1d1f6742711ff70d1a2ed1b0f894",
                          "e64f0f17d2e8c1145399180536b6594143174ebc8ee69c42487037d9990591c9"],
    "awq_gpu": ["f6235a53dd4f20e6403c0e68cde57c9bc3d57017130e60c25fc58983ce3ad7c7",
                "ea9e94f18f6ef82358e92a1c1f00164d2b2bffe3e52ab4f6bfc1e7f578ca3cc7"],
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
