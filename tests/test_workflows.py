"""The example workflows (workflows/) run end to end on a tiny random model, with their step counts
cut down; the SmolLM2 runs are in benchmarks/workflows.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from olivepress.models.onnx_adapters import read_adapter_file
from olivepress.runtime.generate import GenAIModel, GenerationOptions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["quickstart.json", "olive-lab/workflow.json", "tone-classification.json", "tone-classification-qlora.json"]


def shrunk(document: dict, model: Path, tmp_path: Path) -> dict:
    """The document on `model`, with two training steps, a little calibration, and paths under tmp_path."""
    document["input_model"]["model_path"] = str(model)
    for data in document.get("data_configs", []):
        load = data["load_dataset_config"]
        load["data_files"] = str(ROOT / load["data_files"])
    for entry in document["passes"].values():
        if "training_args" in entry:
            entry["training_args"].update(max_steps=2)
        if entry["type"] in ("AWQ", "GPTQ"):
            entry.update(num_samples=4, seq_len=64)
    document["engine"].update(cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"))
    return document


@pytest.mark.parametrize("name", DOCUMENTS)
def test_example_workflow_runs_end_to_end(name, tiny_llama, tmp_path, cli, write_doc, one_thread):
    document = shrunk(json.loads((ROOT / "workflows" / name).read_text()), tiny_llama, tmp_path)
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines() if line.startswith("pass ")] == list(document["passes"])
    model_dir = tmp_path / "out" / "model"
    adapters = {"travel": model_dir / "adapter_weights.onnx_adapter"} if "ExtractAdapters" in out else {}
    model = GenAIModel(model_dir, adapters)
    for adapter in [None, *adapters]:
        assert len(list(model.tokens("Where to?", GenerationOptions(max_length=24), adapter))) > 0
    if adapters:
        assert read_adapter_file(adapters["travel"])


def test_the_lab_script_runs_its_four_steps(tmp_path):
    from test_quantized_embeddings import write_tied_llama

    # tied like SmolLM2, the lab's model: quantize stores the table once as the int4 head, which LoRA trains on
    # and the export reads back
    model = write_tied_llama(tmp_path / "tied-llama")
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "MODEL": str(model), "MAX_STEPS": "2", "AWQ_SAMPLES": "4",
           "OLIVEPRESS": str(venv_bin / "olivepress"), "PYTHON": sys.executable}
    result = subprocess.run([str(ROOT / "workflows" / "olive-lab" / "lab.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "auto-opt: ModelBuilder(precision=int4, execution_provider=cpu) -> ExtractAdapters" in result.stdout
    assert "[Travel]: What's a must-see in Paris?" in result.stdout
    for folder in ("awq/model", "ft/adapter", "ft/model", "onnx-ao/model"):
        assert (tmp_path / "models" / folder).is_dir(), folder
    fine_tuned = json.loads((tmp_path / "models" / "ft" / "model" / "config.json").read_text())
    assert fine_tuned["quantization_config"]["quant_method"] == "awq"
    assert fine_tuned["quantization_config"]["embeds"] is True
    assert (tmp_path / "models" / "onnx-ao" / "model" / "adapter_weights.onnx_adapter").is_file()
