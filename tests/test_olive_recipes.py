"""The documents in workflows/olive-recipes/: each validates, and the CPU-runnable ones run on the tiny Llama (their
model_path and output folders swapped, nothing else)."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from olivepress.passes.registry import PassRegistry

RECIPES = Path(__file__).parent.parent / "workflows" / "olive-recipes"
# Olive's CPU int4 recipe quantizes the input embeddings (rtn embeds: true), which no checkpoint olivepress writes can
# hold, so it is kept with the test documents, not the runnable workflows
REFUSED_RECIPE = Path(__file__).parent / "olive_examples" / "olive-recipes" / "smollm2-cpu-int4-selective-mixed.json"


def test_the_cpu_int4_recipe_is_refused_in_one_line_for_its_quantized_embeddings(cli):
    code, _, err = cli("validate", "--config", REFUSED_RECIPE)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ("selective-mixed.json:11: passes.r.embeds: quantized input embeddings cannot be written: the awq and gptq "
            "checkpoints hold quantized linears only") in err


def on_tiny_model(recipe: str, model: Path, tmp_path: Path) -> dict:
    document = json.loads((RECIPES / recipe).read_text())
    document["input_model"]["model_path"] = str(model)
    document["engine"] |= {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}
    return document


@pytest.mark.parametrize("recipe", sorted(path.name for path in RECIPES.glob("*.json")))
def test_recipes_validate(recipe, cli):
    document = json.loads((RECIPES / recipe).read_text())
    missing = [entry["type"] for entry in document["passes"].values()
               if entry["type"].lower() not in {name.lower() for name in PassRegistry.default().names()}]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, which this checkout does not register yet")
    code, out, err = cli("validate", "--config", RECIPES / recipe)
    assert code == 0, err
    assert out.startswith(f"{RECIPES / recipe}: valid")


def step_logits(model_dir: Path) -> np.ndarray:
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[5, 17, 42, 99, 7, 12]])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for value in session.get_inputs():
        if value.name.startswith("past_key_values"):
            feed[value.name] = np.zeros((1, value.shape[1], 0, 16), dtype=np.float32)  # tiny Llama: head size 16
    return session.run(None, feed)[0]


@pytest.mark.slow
def test_npu_qdq_recipe_runs(tiny_llama, tmp_path, write_doc, cli):
    document = on_tiny_model("smollm2-npu-qdq.json", tiny_llama, tmp_path)
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    built = tmp_path / "out" / "model"
    proto = onnx.load(str(built / "model.onnx"), load_external_data=False)
    counts = {op: sum(node.op_type == op for node in proto.graph.node)
              for op in ("DequantizeLinear", "MatMulNBits", "LpNormalization")}
    assert counts["DequantizeLinear"] >= 2 * 4 and counts["MatMulNBits"] == 1  # the LM head is left as it was
    assert counts["LpNormalization"] == 5
    assert proto.graph.name == "smollm2-135m-instruct-qdq"
    assert {entry.key: entry.value for entry in proto.metadata_props}["recipe"] == "smollm2-npu-qdq"
    assert (built / "genai_config.json").is_file()

    plain = on_tiny_model("smollm2-npu-qdq.json", tiny_llama, tmp_path / "plain")
    plain["passes"] = {"builder": plain["passes"]["builder"]}
    code, _, err = cli("run", "--config", write_doc(plain, "plain.json"))
    assert code == 0, err
    expected = step_logits(tmp_path / "plain" / "out" / "model")
    # measured 6.7e-4 of the largest logit: the same int4 weights; the L2 norm leaves out RMSNorm's epsilon, and
    # onnxruntime fuses each DequantizeLinear + MatMul back into a MatMulNBits of its own
    assert np.abs(step_logits(built) - expected).max() < 5e-3 * np.abs(expected).max()
