"""The AWQ, GPTQ and RTN passes through the engine, and the GenAI builder reading their checkpoints."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from olivepress.quantization.checkpoint import load_quantized

GROUP_SIZE = 16  # not the builder's default block size (32), so the graph shows whose blocks it holds


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def calibration_data(tmp_path: Path, texts: list[str]) -> dict:
    source = tmp_path / "calibration.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return {"name": "calibration", "load_dataset_config": {"params": {"data_name": "json", "data_files": str(source)}}}


def workflow(model: Path, tmp_path: Path, passes: dict, **extra) -> dict:
    return {"input_model": {"type": "HfModel", "model_path": str(model)}, "passes": passes,
            "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / extra.pop("out", "out"))},
            **extra}


def quantize_pass(algorithm: str, **config) -> dict:
    return {"type": algorithm, **config}


def onnx_logits(model_dir: Path, ids: torch.Tensor) -> np.ndarray:
    """The built model's logits for a one-row sequence, prefilled by onnxruntime-genai (which lays out the KV cache,
    sliding-window layers' included)."""
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=128)  # room for a sliding window (32 in the tiny Gemma 3)
    generator = og.Generator(model, params)
    generator.append_tokens(ids[0].tolist())
    return generator.get_output("logits")


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory) -> Path:
    from tiny_architectures import write_tiny_architecture

    return write_tiny_architecture(tmp_path_factory.mktemp("gemma3"), "gemma3_text")


@pytest.mark.parametrize("architecture,algorithm", [
    ("llama", "AWQ"), ("llama", "GPTQ"), ("llama", "RTN"), ("phi3", "AWQ"), ("phi3", "GPTQ"), ("gemma3", "AWQ"),
])
def test_the_builder_reads_the_quantized_weights_as_olivepress_computes_with_them(
        architecture, algorithm, request, tmp_path, write_doc, cli):
    model = request.getfixturevalue(f"tiny_{architecture}")
    options = {"group_size": GROUP_SIZE}
    extra = {}
    if algorithm != "RTN":
        options.update(data_config="calibration", num_samples=8, seq_len=32)
        extra["data_configs"] = [calibration_data(tmp_path, ["Where should I travel in spring? Kyoto, for the blossoms."] * 40)]
    if algorithm == "GPTQ":
        options["desc_act"] = True
    quantize = quantize_pass(algorithm, **options)
    code, out, err = cli("run", "--config", write_doc(workflow(model, tmp_path, {"q": quantize}, out="hf", **extra)))
    assert code == 0, err
    assert out.startswith(f"pass q ({algorithm}): ran in ")
    quantized = tmp_path / "hf" / "model"
    settings = json.loads((quantized / "config.json").read_text())["quantization_config"]
    assert settings["quant_method"] == ("awq" if algorithm == "AWQ" else "gptq")
    assert settings["group_size"] == GROUP_SIZE and settings["bits"] == 4

    builder = {"type": "ModelBuilder", "precision": "int4", "accuracy_level": 1, "nodes_to_exclude": ["/lm_head/MatMul"]}
    doc = write_doc(workflow(model, tmp_path, {"q": quantize, "builder": builder}, **extra), "built.json")
    code, out, err = cli("run", "--config", doc)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"pass q ({algorithm}): from cache in ")
    built = tmp_path / "out" / "model"
    graph = onnx.load(built / "model.onnx", load_external_data=False).graph
    matmuls = [node for node in graph.node if node.op_type == "MatMulNBits"]
    block_sizes = {next(a.i for a in node.attribute if a.name == "block_size") for node in matmuls}
    prequantized = {i.name for i in graph.initializer if i.name.endswith(".MatMulNBits.qweight")}
    assert len(matmuls) == len(prequantized) == 2 * 5  # per layer: qkv (fused by the builder), o, gate, up, down
    assert block_sizes == {GROUP_SIZE}  # the checkpoint's groups, not the builder's own int4 blocks
    assert [n.op_type for n in graph.node if n.name == "/lm_head/MatMul"] == ["MatMul"]

    ids = torch.randint(3, 300, (1, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = load_quantized(quantized, torch.float32)(ids).logits.numpy()
    np.testing.assert_allclose(onnx_logits(built, ids), expected, atol=1e-4, rtol=1e-4)


def test_the_document_and_the_configs_defaults_reach_the_quantizer(tiny_llama, tmp_path, write_doc, cli, monkeypatch):
    from olivepress.quantization import algorithms
    from olivepress.quantization.options import GptqOptions

    received = []

    def recording(weight, hessian, options):
        received.append(options)
        return quantize(weight, hessian, options)

    quantize = algorithms.gptq_quantize
    monkeypatch.setattr(algorithms, "gptq_quantize", recording)
    gptq = quantize_pass("GPTQ", group_size=GROUP_SIZE, damp_percent=0.05, data_config="calibration", num_samples=8,
                         seq_len=32)
    data = [calibration_data(tmp_path, ["Where should I travel in spring? Kyoto, for the blossoms."] * 40)]
    code, _, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, {"q": gptq}, data_configs=data)))
    assert code == 0, err
    assert set(received) == {GptqOptions(bits=4, group_size=GROUP_SIZE, sym=False, modules_to_not_convert=("lm_head",),
                                         damp_percent=0.05, desc_act=True, block_size=128, apply_clip=True)}
    assert len(received) == 2 * 4  # per layer: q/k/v, o, gate/up and down, stacked by shared input
    meta = json.loads((tmp_path / "out" / "model" / "config.json").read_text())["quantization_config"]["meta"]
    assert (meta["damp_percent"], meta["desc_act"], meta["block_size"]) == (0.05, True, 128)


def test_group_size_fallback_and_8_bits_reach_the_checkpoint_and_the_graph(tiny_llama, tmp_path, write_doc, cli):
    quantize = quantize_pass("RTN", bits=8, group_size=128)
    code, out, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, {"q": quantize}, out="hf")))
    assert code == 0, err
    assert "group_size 128 does not divide in_features 64 (model.layers.0.self_attn.q_proj and 11 more); " \
           "using group_size 32" in err
    settings = json.loads((tmp_path / "hf" / "model" / "config.json").read_text())["quantization_config"]
    assert (settings["bits"], settings["group_size"], settings["meta"]["group_size_requested"]) == (8, 32, 128)
    model = load_quantized(tmp_path / "hf" / "model", torch.float32)
    linear = model.model.layers[0].mlp.down_proj
    assert (linear.bits, linear.group_size, tuple(linear.qweight.shape)) == (8, 32, (32, 64))

    builder = {"type": "ModelBuilder", "precision": "int4", "accuracy_level": 1, "nodes_to_exclude": ["/lm_head/MatMul"]}
    code, _, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, {"q": quantize, "builder": builder}),
                                                    "built.json"))
    assert code == 0, err
    built = tmp_path / "out" / "model"
    graph = onnx.load(built / "model.onnx", load_external_data=False).graph
    attributes = {(a.name, a.i) for n in graph.node if n.op_type == "MatMulNBits" for a in n.attribute}
    assert {("bits", 8), ("block_size", 32)} <= attributes and ("bits", 4) not in attributes
    ids = torch.randint(3, 300, (1, 16), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = model(ids).logits.numpy()
    np.testing.assert_allclose(onnx_logits(built, ids), expected, atol=1e-4, rtol=1e-4)


def test_an_already_quantized_model_is_refused(tiny_llama, tmp_path, write_doc, cli):
    assert cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, {"q": quantize_pass("RTN")}, out="rtn")))[0] == 0
    quantized = tmp_path / "rtn" / "model"
    code, _, err = cli("run", "--config", write_doc(workflow(quantized, tmp_path, {"q": quantize_pass("GPTQ")}), "again.json"))
    assert code == 2
    assert err.splitlines()[-1] == (f"olivepress: error: pass 'q' (GPTQ): {quantized}: the model is already quantized "
                                    f"(quantization_config.quant_method 'gptq'); GPTQ needs the float model")
    assert len(list((tmp_path / "cache" / "entries").iterdir())) == 1  # only the RTN result
    assert list((tmp_path / "cache" / "staging").iterdir()) == []


def test_too_short_calibration_data_is_refused_and_nothing_is_written(tiny_llama, tmp_path, write_doc, cli):
    doc = workflow(tiny_llama, tmp_path, {"q": quantize_pass("AWQ", data_config="calibration", seq_len=512)},
                   data_configs=[calibration_data(tmp_path, ["Too short."])])
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2
    assert err.splitlines()[-1] == ("olivepress: error: pass 'q' (AWQ): data_configs.calibration: calibration data "
                                    "too short: 10 tokens, need at least 512")
    assert list((tmp_path / "cache" / "entries").iterdir()) == []
    assert list((tmp_path / "cache" / "staging").iterdir()) == []


def test_a_model_with_an_adapter_must_be_merged_first(tiny_llama, tmp_path, write_doc, cli):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    doc = workflow(tiny_llama, tmp_path, {"q": quantize_pass("RTN")})
    doc["input_model"]["adapter_path"] = str(tmp_path / "adapter")
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2
    assert err.splitlines()[-1] == (f"olivepress: error: pass 'q' (RTN): RTN quantizes a base model, but this one has "
                                    f"an adapter ({tmp_path / 'adapter'}); merge it first with a MergeAdapterWeights pass")


def test_bits_the_format_cannot_hold_are_a_config_error(tiny_llama, tmp_path, write_doc, cli):
    code, _, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, {"q": quantize_pass("AWQ", bits=8)})))
    assert code == 2
    assert "8 bits cannot be written: the awq checkpoint format holds 4-bit weights" in err
    assert "passes.q" in err
