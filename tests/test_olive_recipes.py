"""The documents in workflows/olive-recipes/: each validates, and the CPU-runnable ones run on the tiny Llama (their
model_path and output folders swapped, nothing else)."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_quantized_embeddings import write_tied_llama

from olivepress.passes.registry import PassRegistry

RECIPES = Path(__file__).parent.parent / "workflows" / "olive-recipes"
CPU_INT4 = "smollm2-cpu-int4-selective-mixed.json"
# the same recipe as Olive writes it, kept with Olive's other documents
CPU_INT4_FIXTURE = Path(__file__).parent / "olive_examples" / "olive-recipes" / CPU_INT4


def test_the_cpu_int4_recipe_and_its_fixture_hold_the_same_passes():
    fixture, recipe = (json.loads(path.read_text()) for path in (CPU_INT4_FIXTURE, RECIPES / CPU_INT4))
    assert recipe["passes"] == fixture["passes"]
    assert list(recipe["passes"]) == ["s", "g", "r", "m", "t"]


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


@pytest.fixture(scope="module")
def tiny_tied_llama(tmp_path_factory) -> Path:
    return write_tied_llama(tmp_path_factory.mktemp("models") / "tiny-tied-llama")


def fixture_on_tiny_model(model: Path, tmp_path: Path) -> dict:
    """The fixture copy with the tiny model, its own folders, and fewer, shorter calibration rows."""
    document = json.loads(CPU_INT4_FIXTURE.read_text())
    document["input_model"]["model_path"] = str(model)
    document["engine"] |= {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}
    for name in ("s", "g"):
        document["passes"][name] |= {"num_samples": 8, "seq_len": 64}
    return document


@pytest.mark.slow
def test_cpu_int4_recipe_runs_with_8_bit_tied_embeddings_and_generates(tiny_tied_llama, tmp_path, write_doc, cli):
    import torch

    from olivepress.quantization.checkpoint import load_quantized
    from olivepress.runtime.generate import GenAIModel, GenerationOptions

    document = fixture_on_tiny_model(tiny_tied_llama, tmp_path)
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert "TieWordEmbeddings 0" in out  # the builder already shares the table: nothing left to tie
    built = tmp_path / "out" / "model"
    proto = onnx.load(str(built / "model.onnx"), load_external_data=False)
    nodes = {node.name: node for node in proto.graph.node}
    bits = {name: next(a.i for a in node.attribute if a.name == "bits") for name, node in nodes.items()
            if node.op_type in ("MatMulNBits", "GatherBlockQuantized")}
    gather, head = nodes["/model/embed_tokens/GatherBlockQuantized"], nodes["/lm_head/MatMulNBits"]
    assert bits.pop(gather.name) == 8 and bits.pop(head.name) == 8
    assert set(bits.values()) == {4, 8} and list(bits.values()).count(4) > len(bits) / 2  # ratio 0.65 at 4 bits
    # tied: the embedding gathers from the head's codes, scales and zero points; no float table is stored
    assert nodes[gather.input[0].removesuffix("/output_0")].input[0] == head.input[1]
    assert gather.input[2:4] == head.input[2:4]
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    assert [len(initializers[name].dims) for name in gather.input[2:4]] == [2, 2]
    assert not [name for name in initializers if "embed_tokens" in name]

    quantized = fixture_on_tiny_model(tiny_tied_llama, tmp_path)
    quantized["passes"] = {name: quantized["passes"][name] for name in ("s", "g", "r")}
    quantized["engine"]["output_dir"] = str(tmp_path / "hf")
    code, _, err = cli("run", "--config", write_doc(quantized, "hf.json"))
    assert code == 0, err
    model = load_quantized(tmp_path / "hf" / "model", torch.float32)
    with torch.no_grad():
        expected = model(torch.tensor([[5, 17, 42, 99, 7, 12]])).logits.numpy()
    # measured 1.0% of the largest logit: MatMulNBits's accuracy_level 4 quantizes the activations to int8
    assert np.abs(step_logits(built) - expected).max() < 0.03 * np.abs(expected).max()

    tokens = list(GenAIModel(built).tokens("What's a must-see in Paris?", GenerationOptions(max_length=48)))
    assert 0 < len(tokens) and all(0 <= token < 320 for token in tokens)
