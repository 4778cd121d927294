"""ModelBuilder on tiny random Llama and Phi-3 models, and generation with the result."""

import json
from pathlib import Path

import onnx
import pytest
from conftest import builder_workflow

from olivepress.runtime.generate import GenAIModel, GenerationOptions

pytestmark = pytest.mark.slow


def graph_nodes(model_dir: Path) -> list[onnx.NodeProto]:
    return list(onnx.load(model_dir / "model.onnx", load_external_data=False).graph.node)


def attribute(node: onnx.NodeProto, name: str):
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


@pytest.mark.parametrize("architecture", ["llama", "phi3"])
def test_int4_build_of_tiny_models(architecture, request, tmp_path, write_doc, cli):
    model = request.getfixturevalue(f"tiny_{architecture}")
    doc = write_doc(builder_workflow(model, tmp_path, block_size=32))
    code, out, err = cli("run", "--config", doc)
    assert code == 0, err
    built = tmp_path / "out" / "model"
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= {p.name for p in built.iterdir()}
    genai = json.loads((built / "genai_config.json").read_text())
    assert genai["model"]["type"] == architecture
    matmuls = [n for n in graph_nodes(built) if n.op_type == "MatMulNBits"]
    assert len(matmuls) >= 2 * 4  # attention and MLP projections of both layers
    assert {attribute(n, "bits") for n in matmuls} == {4} and {attribute(n, "block_size") for n in matmuls} == {32}
    assert out.splitlines()[0].startswith("pass builder (ModelBuilder): ran in ")

    code, out, _ = cli("run", "--config", doc)
    assert code == 0 and out.splitlines()[0].startswith("pass builder (ModelBuilder): from cache in ")
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    assert footprint["passes"][0]["cache"] == "hit"
    assert footprint["passes"][0]["config"]["precision"] == "int4"


def test_builder_options_reach_the_graph(tiny_llama, tmp_path, write_doc, cli):
    doc = write_doc(builder_workflow(tiny_llama, tmp_path, block_size=64, accuracy_level=1,
                                     nodes_to_exclude=["/lm_head/MatMul"]))
    code, _, err = cli("run", "--config", doc)
    assert code == 0, err
    nodes = graph_nodes(tmp_path / "out" / "model")
    quantized = [n for n in nodes if n.op_type == "MatMulNBits"]
    assert {attribute(n, "block_size") for n in quantized} == {64}
    assert {attribute(n, "accuracy_level") for n in quantized} == {1}
    assert [n.op_type for n in nodes if n.name == "/lm_head/MatMul"] == ["MatMul"]


def test_fp32_generation_matches_transformers_greedy(tiny_llama, tmp_path, write_doc, cli):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    doc = write_doc(builder_workflow(tiny_llama, tmp_path, precision="fp32"))
    assert cli("run", "--config", doc)[0] == 0
    prompt = "What's a must-see in Paris?"
    code, out, err = cli("generate", "--model", tmp_path / "out" / "model", "--prompt", prompt, "--max_length", 48)
    assert code == 0, err

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        generated = reference.generate(ids, max_length=48, do_sample=False, pad_token_id=0)
    expected = generated[0, ids.shape[1]:].tolist()
    genai = GenAIModel(tmp_path / "out" / "model")
    assert genai.prompt_ids(prompt, use_chat_template=True) == ids[0].tolist()
    assert list(genai.tokens(prompt, GenerationOptions(max_length=48))) == expected
    assert len(expected) == 48 - ids.shape[1]
    assert out.strip()


def test_builder_failure_names_the_pass_and_the_reason(tmp_path, write_doc, cli):
    model = tmp_path / "odd"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                   "hidden_size": 64, "num_hidden_layers": 1, "vocab_size": 32}))
    doc = write_doc(builder_workflow(model, tmp_path))
    code, _, err = cli("run", "--config", doc)  # a Llama config without weights or tokenizer
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("olivepress: error:")]  # beside progress lines
    assert errors == [err.splitlines()[-1]]
    assert errors[0].startswith("olivepress: error: pass 'builder' failed: RuntimeError: the GenAI builder failed: ")
    assert list((tmp_path / "cache" / "entries").iterdir()) == []
    assert list((tmp_path / "cache" / "staging").iterdir()) == []

    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    code, _, err = cli("run", "--config", doc)
    assert code == 2
    assert err.splitlines()[-1].startswith(f"olivepress: error: pass 'builder' (ModelBuilder): {model / 'config.json'}: "
                                           "the GenAI builder does not export GPT2LMHeadModel; it exports "
                                           "ChatGLMForConditionalGeneration, ")


def test_generate_rejects_unknown_adapter_names(tiny_llama, tmp_path, write_doc, cli):
    assert cli("run", "--config", write_doc(builder_workflow(tiny_llama, tmp_path)))[0] == 0
    code, _, err = cli("generate", "-m", tmp_path / "out" / "model", "-p", "hi", "--use", "travel")
    assert code == 2 and err.strip() == "olivepress: error: --use travel: no adapter of that name (loaded: none loaded)"
    code, _, err = cli("generate", "-m", tmp_path / "out" / "model", "-p", "hi", "--adapter", "travel")
    assert code == 2 and "--adapter travel: expected NAME=FILE" in err
    code, _, err = cli("generate", "-m", tmp_path / "out" / "model", "-p", "hi", "--adapter", f"t={tmp_path / 'no.onnx_adapter'}")
    assert code == 2 and "no such file" in err
    code, _, err = cli("generate", "-m", tmp_path, "-p", "hi")
    assert code == 2 and "not an ONNX Runtime GenAI model folder (no genai_config.json)" in err


def test_a_cuda_model_without_cuda_runtime_names_the_package(tiny_llama, tmp_path, write_doc, cli):
    import onnxruntime_genai as og

    if og.is_cuda_available():
        pytest.skip("this machine has the CUDA build of onnxruntime-genai")
    doc = write_doc(builder_workflow(tiny_llama, tmp_path, precision="fp16", execution_provider="cuda"))
    assert cli("run", "--config", doc)[0] == 0
    genai = json.loads((tmp_path / "out" / "model" / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["session_options"]["provider_options"][0].keys() == {"cuda"}
    code, _, err = cli("generate", "-m", tmp_path / "out" / "model", "-p", "hi")
    assert code == 2
    assert "was built for the cuda execution provider, which this onnxruntime-genai lacks; " \
           "install onnxruntime-gpu and onnxruntime-genai-cuda (pip install 'olivepress[cuda]')" in err
