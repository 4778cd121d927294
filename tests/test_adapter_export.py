"""Exporting LoRA adapters: auto-opt, ModelBuilder + ExtractAdapters, convert-adapters, and switching
adapters per request, on tiny random Llama and Phi-3 models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from olivepress.models.onnx_adapters import read_adapter_file, target_of_weight
from olivepress.runtime.generate import GenAIModel, GenerationOptions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
IDS = np.array([[5, 9, 33, 70, 2, 11, 40]], dtype=np.int64)


def write_lora(base: Path, folder: Path, targets: list[str], rank: int, seed: int, **options) -> Path:
    """A PEFT LoRA adapter on `base` with random (non-zero) B matrices, as after some training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, **options))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adapters(tiny_llama, tiny_phi3, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "travel": write_lora(tiny_llama, root / "travel", ["q_proj", "k_proj", "v_proj", "o_proj"], rank=4, seed=1),
        "tone": write_lora(tiny_llama, root / "tone", ["q_proj", "v_proj"], rank=8, seed=2),
        "mlp": write_lora(tiny_llama, root / "mlp", ["gate_proj"], rank=4, seed=3),
        "phi3": write_lora(tiny_phi3, root / "phi3", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"], rank=4, seed=4),
    }


@pytest.fixture(scope="session")
def exported(tiny_llama, tiny_phi3, adapters, tmp_path_factory):
    """auto-opt outputs, built once: name -> OUT/model."""
    from olivepress.cli import main

    root = tmp_path_factory.mktemp("exported")
    cache = root / "cache"
    runs = {
        "llama-fp32": [tiny_llama, adapters["travel"], "fp32"],
        "llama-int4": [tiny_llama, adapters["travel"], "int4"],
        "phi3-fp32": [tiny_phi3, adapters["phi3"], "fp32"],
    }
    for name, (model, adapter, precision) in runs.items():
        code = main(["auto-opt", "-m", str(model), "--adapter_path", str(adapter), "--precision", precision,
                     "--use_ort_genai", "-o", str(root / name), "--cache_dir", str(cache)])
        assert code == 0
    return {name: root / name / "model" for name in runs}


def onnx_logits(model_dir: Path, adapter: dict | None = None) -> np.ndarray:
    """Prefill logits of a GenAI model folder through plain onnxruntime, optionally feeding adapter weights."""
    import onnxruntime as ort

    decoder = json.loads((model_dir / "genai_config.json").read_text())["model"]["decoder"]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # an overridable initializer is worth a warning to onnxruntime; it is the point here
    session = ort.InferenceSession(str(model_dir / decoder["filename"]), options, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": IDS, "attention_mask": np.ones_like(IDS)}
    for value in session.get_inputs():
        if value.name.startswith("past_key_values"):
            feeds[value.name] = np.zeros((1, decoder["num_key_value_heads"], 0, decoder["head_size"]), np.float32)
    return session.run(["logits"], {**feeds, **(adapter or {})})[0]


def torch_logits(base: Path, adapter: Path | None) -> np.ndarray:
    import torch
    from peft import PeftModel

    from olivepress.models.loading import load_causal_lm

    model = load_causal_lm(base, "float32")
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits.numpy()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def graph(model_dir: Path):
    import onnx

    return onnx.load(str(model_dir / "model.onnx"), load_external_data=False).graph


@pytest.mark.parametrize("name", ["llama-fp32", "llama-int4", "phi3-fp32"])
def test_every_adapter_weight_is_an_overridable_input_with_an_empty_default(exported, name):
    model_graph = graph(exported[name])
    weights = read_adapter_file(exported[name] / "adapter_weights.onnx_adapter")
    inputs = {value.name for value in model_graph.input}
    defaults = {tensor.name: list(tensor.dims) for tensor in model_graph.initializer}
    assert weights and set(weights) <= inputs
    for weight_name, array in weights.items():
        assert array.dtype == np.float32  # never int4, even when the base is
        which = target_of_weight(weight_name)[1]
        assert defaults[weight_name] == ([array.shape[0], 0] if which == "A" else [0, array.shape[1]])
    lora_inputs = {name for name in inputs if target_of_weight(name)}
    assert lora_inputs == set(weights)


@pytest.mark.parametrize("name, base, adapter", [("llama-fp32", "tiny_llama", "travel"), ("phi3-fp32", "tiny_phi3", "phi3")])
def test_fp32_logits_with_the_adapter_match_the_peft_model(exported, adapters, request, name, base, adapter):
    base_path = request.getfixturevalue(base)
    weights = read_adapter_file(exported[name] / "adapter_weights.onnx_adapter")
    with_adapter = onnx_logits(exported[name], weights)
    expected = torch_logits(base_path, adapters[adapter])
    assert relative_error(with_adapter, expected) < 1e-3
    # and the adapter matters: without it the logits are the base model's, far from the PEFT model's
    without = onnx_logits(exported[name])
    assert relative_error(without, torch_logits(base_path, None)) < 1e-4
    assert relative_error(without, expected) > 0.05


def test_no_adapter_gives_exactly_the_base_models_output(exported, tiny_llama, tmp_path, cli, write_doc):
    # The same graph without LoRA branches: the builder keeps q/k/v apart when it adds LoRA, so the base is
    # built the same way; an empty adapter must then add exactly nothing.
    doc = write_doc({
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32", "extra_options": {"fuse_qkv": False}}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "base")},
    })
    assert cli("run", "--config", doc)[0] == 0
    assert np.array_equal(onnx_logits(exported["llama-fp32"]), onnx_logits(tmp_path / "base" / "model"))


def test_int4_export_quantizes_the_base_but_keeps_lora_matmuls_in_float(exported):
    nodes = {node.name: node.op_type for node in graph(exported["llama-int4"]).node}
    lora_nodes = {name: op for name, op in nodes.items() if "/lora_" in name}
    assert len(lora_nodes) == 2 * 4 * 2  # A and B, 4 projections, 2 layers
    assert set(lora_nodes.values()) == {"MatMul"}
    assert nodes["/model/layers.0/attn/q_proj/MatMul_Q4"] == "MatMulNBits"


def test_adapter_on_a_quantized_base_matches_torch(tiny_llama, adapters, tmp_path, cli, write_doc):
    code, _, err = cli("quantize", "-m", tiny_llama, "--algorithm", "rtn", "--group_size", "32",
                       "-o", tmp_path / "rtn", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    # The builder cannot load an adapter onto a quantized checkpoint; olivepress adds the LoRA branches itself.
    # fp32 activations and the float LM head make the graph compute what the torch QuantLinear computes.
    doc = write_doc({
        "input_model": {"type": "HfModel", "model_path": str(tmp_path / "rtn"), "adapter_path": str(adapters["travel"])},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "accuracy_level": 1,
                               "nodes_to_exclude": ["/lm_head/MatMul"]},
                   "extract": {"type": "ExtractAdapters"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "onnx")},
    })
    assert cli("run", "--config", doc)[0] == 0
    model_dir = tmp_path / "onnx" / "model"
    weights = read_adapter_file(model_dir / "adapter_weights.onnx_adapter")
    expected = torch_logits(tmp_path / "rtn" / "model", adapters["travel"])  # dequantizing QuantLinear + PEFT
    assert relative_error(onnx_logits(model_dir, weights), expected) < 1e-3
    assert relative_error(onnx_logits(model_dir), torch_logits(tmp_path / "rtn" / "model", None)) < 1e-3

    code, out, err = cli("auto-opt", "-m", tmp_path / "rtn", "--adapter_path", adapters["travel"],
                         "-o", tmp_path / "auto", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    assert out.splitlines()[0] == "auto-opt: ModelBuilder(precision=int4, execution_provider=cpu) -> ExtractAdapters"
    assert sorted(read_adapter_file(tmp_path / "auto" / "model" / "adapter_weights.onnx_adapter")) == sorted(weights)


def test_two_adapters_switch_in_one_process_in_any_order(exported, adapters, tmp_path, cli):
    model_dir = exported["llama-int4"]
    tone = tmp_path / "tone.onnx_adapter"
    code, out, err = cli("convert-adapters", "--adapter_path", adapters["tone"], "--output_path", tone, "--model", model_dir)
    assert code == 0, err
    assert out.strip() == f"wrote {tone}: 8 weights, 3,584 parameters, rank 8, float32"  # q: 64x8 + 8x64, v: 64x8 + 8x32
    model = GenAIModel(model_dir, {"travel": model_dir / "adapter_weights.onnx_adapter", "tone": tone})
    options = GenerationOptions(max_length=48)

    def answer(adapter):
        return list(model.tokens("What's a must-see in Paris?", options, adapter))

    first = {name: answer(name) for name in (None, "travel", "tone")}
    assert len({tuple(tokens) for tokens in first.values()}) == 3  # each adapter changes the answer
    for name in ("tone", None, "travel", "tone", "travel", None):
        assert answer(name) == first[name]


def test_generate_command_uses_the_named_adapter(exported, cli):
    model_dir = exported["llama-int4"]
    adapter = f"travel={model_dir / 'adapter_weights.onnx_adapter'}"
    code, with_adapter, _ = cli("generate", "-m", model_dir, "-p", "hi", "--adapter", adapter, "--use", "travel",
                                "--max_length", "30")
    assert code == 0
    code, without, _ = cli("generate", "-m", model_dir, "-p", "hi", "--adapter", adapter, "--max_length", "30")
    assert code == 0 and with_adapter != without
    model = GenAIModel(model_dir, {"travel": model_dir / "adapter_weights.onnx_adapter"})
    assert with_adapter == "".join(model.stream("hi", GenerationOptions(max_length=30), "travel")) + "\n"


def test_the_seed_lab_app_runs_against_the_auto_opt_output(exported, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "onnx-ao").mkdir()
    os.symlink(exported["llama-int4"], tmp_path / "models" / "onnx-ao" / "model")
    result = subprocess.run([sys.executable, str(ROOT / "workflows" / "olive-lab" / "app.py"), "Where to go in Paris?"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[Travel]: Where to go in Paris?"
    model = GenAIModel(exported["llama-int4"], {"travel": exported["llama-int4"] / "adapter_weights.onnx_adapter"})
    expected = "".join(model.stream("Where to go in Paris?", GenerationOptions(max_length=100), "travel"))
    assert "\n".join(lines[1:-1]) == expected
    assert lines[-1].endswith(" s") and " tokens in " in lines[-1]


def test_convert_adapters_splits_packed_phi3_modules_like_the_builder(exported, adapters, tmp_path, cli):
    out = tmp_path / "phi3.onnx_adapter"
    assert cli("convert-adapters", "-a", adapters["phi3"], "-o", out)[0] == 0  # sizes from the adapter's base folder
    converted = read_adapter_file(out)
    built = read_adapter_file(exported["phi3-fp32"] / "adapter_weights.onnx_adapter")
    assert sorted(converted) == sorted(built)
    assert all(np.array_equal(converted[name], built[name]) for name in built)


# ---- bad input ---------------------------------------------------------------------------------

def test_an_adapter_of_another_base_is_refused_and_nothing_is_written(exported, tiny_llama, tmp_path, cli):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_llama)
    config.hidden_size, config.head_dim = 48, 12
    other = tmp_path / "other"
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    adapter = write_lora(other, tmp_path / "other-adapter", ["q_proj"], rank=4, seed=0)
    out = tmp_path / "x.onnx_adapter"
    code, _, err = cli("convert-adapters", "-a", adapter, "-o", out, "-m", exported["llama-int4"])
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"olivepress: error: --adapter_path {adapter}: model.layers.0.attn.q_proj.lora_A.MatMul.weight has shape "
        "[48, 4] but the model takes [64, rank]: the adapter was trained on a different base"
    )
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []


def test_an_adapter_on_modules_the_model_lacks_is_refused(exported, adapters, tmp_path, cli):
    code, _, err = cli("convert-adapters", "-a", adapters["mlp"], "-o", tmp_path / "m.onnx_adapter", "-m", exported["llama-int4"])
    assert code == 2
    assert err.strip() == (
        f"olivepress: error: --adapter_path {adapters['mlp']}: 4 weights are not inputs of the model "
        "(e.g. model.layers.0.mlp.gate_proj.lora_A.MatMul.weight); the model takes LoRA on "
        "attn.k_proj, attn.o_proj, attn.q_proj, attn.v_proj"
    )


def test_dora_and_bias_adapters_cannot_become_adapter_files(tiny_llama, tmp_path, cli):
    dora = write_lora(tiny_llama, tmp_path / "dora", ["q_proj"], rank=4, seed=0, use_dora=True)
    code, _, err = cli("convert-adapters", "-a", dora, "-o", tmp_path / "d.onnx_adapter")
    assert code == 2 and "a DoRA adapter cannot be a swappable ONNX adapter; merge it with MergeAdapterWeights" in err
    code, _, err = cli("convert-adapters", "-a", tmp_path, "-o", tmp_path / "d.onnx_adapter")
    assert code == 2 and err.strip() == f"olivepress: error: {tmp_path}: not a PEFT adapter folder (no adapter_config.json)"
    code, _, err = cli("convert-adapters", "-a", dora, "-o", tmp_path / "d.bin")
    assert code == 2 and "the file name must end in .onnx_adapter" in err


def test_an_adapter_file_for_a_model_without_lora_inputs_is_refused(tiny_llama, exported, tmp_path, cli, write_doc):
    doc = write_doc({
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "plain")},
    })
    assert cli("run", "--config", doc)[0] == 0
    adapter = exported["llama-int4"] / "adapter_weights.onnx_adapter"
    code, _, err = cli("generate", "-m", tmp_path / "plain" / "model", "-p", "hi", "--adapter", f"travel={adapter}")
    assert code == 2
    assert err.strip().startswith(f"olivepress: error: --adapter travel={adapter}: the model has no LoRA inputs")


def test_extract_adapters_needs_lora_weights(tmp_path, cli, write_doc, tiny_llama):
    doc = write_doc({
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}, "extract": {"type": "ExtractAdapters"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    })
    code, _, err = cli("run", "--config", doc)
    assert code == 2
    assert "the model has no LoRA weights to extract" in err
    assert not (tmp_path / "out").exists()


def test_auto_opt_names_the_package_of_a_missing_provider(tiny_llama, tmp_path, cli):
    code, out, err = cli("auto-opt", "-m", tiny_llama, "--device", "gpu", "-o", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.strip() == ("olivepress: error: --provider CUDAExecutionProvider is not installed in this onnxruntime; "
                           "it comes with onnxruntime-gpu and onnxruntime-genai-cuda (pip install 'olivepress[cuda]')")
    code, _, err = cli("auto-opt", "-m", tiny_llama, "--provider", "CUDAExecutionProvider", "-o", tmp_path / "out")
    assert code == 2 and "--provider CUDAExecutionProvider runs on gpu, but --device is cpu" in err
    assert not (tmp_path / "out").exists()


def test_auto_opt_chain_for_an_architecture_the_builder_lacks(tmp_path):
    from transformers import GPT2Config

    from olivepress.engine.auto_opt import choose_chain
    from olivepress.errors import OlivepressError
    from olivepress.models.handles import HfModel

    GPT2Config(n_embd=64, n_layer=2, n_head=4, architectures=["GPT2LMHeadModel"]).save_pretrained(tmp_path)
    model = HfModel(path=tmp_path)
    with pytest.raises(OlivepressError,
                       match="the ONNX Runtime GenAI builder does not support GPT2LMHeadModel; drop --use_ort_genai"):
        choose_chain(model, "CPUExecutionProvider", "int4", use_ort_genai=True)
    chain = choose_chain(model, "CPUExecutionProvider", "int4", use_ort_genai=False)
    assert chain.describe() == "OnnxConversion -> OrtTransformersOptimization -> OnnxMatMulNBits"
    chain = choose_chain(model, "CPUExecutionProvider", "fp32", False)
    assert chain.describe() == "OnnxConversion -> OrtTransformersOptimization"


def test_auto_opt_keeps_a_quantized_checkpoint_at_int4(tmp_path, tiny_llama, cli):
    code, _, err = cli("quantize", "-m", tiny_llama, "--algorithm", "rtn", "--group_size", "32",
                       "-o", tmp_path / "rtn", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    code, _, err = cli("auto-opt", "-m", tmp_path / "rtn", "--precision", "fp16", "-o", tmp_path / "out")
    assert code == 2
    assert err.strip() == "olivepress: error: the model is a gptq int4 checkpoint; it can only be exported with --precision int4"


def test_auto_opt_for_cuda_builds_an_fp16_graph_whose_adapter_inputs_are_fp16(tiny_llama, adapters, tmp_path, cli,
                                                                             monkeypatch):
    # Building for CUDA needs the provider's package (onnxruntime-gpu) installed, not a GPU: pretend it is.
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    code, out, err = cli("auto-opt", "-m", tiny_llama, "--adapter_path", adapters["travel"], "--device", "gpu",
                         "--provider", "CUDAExecutionProvider", "-o", tmp_path / "out", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    assert out.splitlines()[0] == "auto-opt: ModelBuilder(precision=int4, execution_provider=cuda) -> ExtractAdapters"
    model_dir = tmp_path / "out" / "model"
    config = json.loads((model_dir / "genai_config.json").read_text())
    assert "cuda" in config["model"]["decoder"]["session_options"]["provider_options"][0]
    weights = read_adapter_file(model_dir / "adapter_weights.onnx_adapter")
    assert {array.dtype.name for array in weights.values()} == {"float16"}  # the graph's float type, never int4
    tone = tmp_path / "tone.onnx_adapter"
    code, out, _ = cli("convert-adapters", "-a", adapters["tone"], "-o", tone, "--model", model_dir)
    assert code == 0 and out.strip().endswith("rank 8, float16")


def test_extract_adapters_with_a_fixed_rank_and_required_inputs(tiny_llama, adapters, tmp_path, cli, write_doc):
    doc = write_doc({
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama), "adapter_path": str(adapters["travel"])},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32"},
                   "extract": {"type": "ExtractAdapters", "dynamic_lora_r": False, "optional_inputs": False,
                               "adapter_file_name": "travel.onnx_adapter"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    })
    assert cli("run", "--config", doc)[0] == 0
    model_dir = tmp_path / "out" / "model"
    model_graph = graph(model_dir)
    lora_inputs = [value for value in model_graph.input if target_of_weight(value.name)]
    assert len(lora_inputs) == 16
    assert all(dim.dim_value > 0 for value in lora_inputs for dim in value.type.tensor_type.shape.dim)  # rank 4, fixed
    assert not any(target_of_weight(tensor.name) for tensor in model_graph.initializer)  # no defaults: required
    model_config = json.loads((tmp_path / "out" / "model_config.json").read_text())
    assert model_config["config"]["adapters"] == {"travel": "travel.onnx_adapter"}
    weights = read_adapter_file(model_dir / "travel.onnx_adapter")
    assert relative_error(onnx_logits(model_dir, weights), torch_logits(tiny_llama, adapters["travel"])) < 1e-3

    bad = write_doc({"input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
                     "passes": {"extract": {"type": "ExtractAdapters", "adapter_file_name": "travel.bin"}}}, "bad.json")
    code, _, err = cli("validate", "--config", bad)
    assert code == 2 and "passes.extract.adapter_file_name: must be a file name ending in .onnx_adapter (got 'travel.bin')" in err


def test_auto_opt_exports_an_architecture_the_builder_lacks_with_the_torch_exporter(tmp_path, cli):
    import onnxruntime as ort
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=320, n_positions=128)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    code, out, err = cli("auto-opt", "-m", tmp_path / "gpt2", "--precision", "int8", "-o", tmp_path / "out",
                         "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    assert out.splitlines()[0] == "auto-opt: OnnxConversion -> OrtTransformersOptimization -> OnnxDynamicQuantization"
    session = ort.InferenceSession(str(tmp_path / "out" / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input_ids": IDS, "attention_mask": np.ones_like(IDS)})[0]
    with torch.no_grad():
        expected = GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2")(torch.tensor(IDS)).logits.numpy()
    assert relative_error(logits, expected) < 0.05  # int8 weights and activations; about 0.008 observed
    assert {node.op_type for node in graph(tmp_path / "out" / "model").node} >= {"MatMulInteger", "SkipLayerNormalization"}


def test_convert_adapters_writes_the_dtype_asked_for_without_a_model(adapters, tmp_path, cli):
    out = tmp_path / "travel16.onnx_adapter"
    code, stdout, _ = cli("convert-adapters", "-a", adapters["travel"], "-o", out, "--dtype", "float16")
    assert code == 0 and stdout.strip().endswith("rank 4, float16")
    assert {array.dtype.name for array in read_adapter_file(out).values()} == {"float16"}


def test_evaluation_of_an_exported_model_uses_the_adapter_it_was_exported_with(exported, tiny_llama, adapters):
    from olivepress.evaluation.generation import open_generator
    from olivepress.evaluation.onnx_forward import OnnxDecoder
    from olivepress.hardware import Accelerator
    from olivepress.models.handles import OnnxModel

    model_dir = exported["llama-fp32"]
    with_adapter = OnnxModel(path=model_dir, adapters={"adapter_weights": "adapter_weights.onnx_adapter"})
    logits = OnnxDecoder(with_adapter, "CPUExecutionProvider").logits(IDS[0].tolist())
    assert relative_error(logits, torch_logits(tiny_llama, adapters["travel"])[0]) < 1e-3
    base_logits = OnnxDecoder(OnnxModel(path=model_dir), "CPUExecutionProvider").logits(IDS[0].tolist())
    assert relative_error(base_logits, torch_logits(tiny_llama, None)[0]) < 1e-4

    generator = open_generator(with_adapter, Accelerator("cpu", "CPUExecutionProvider"))
    prompt = generator.prompt_ids("Where to?", use_chat_template=True)
    answer = generator.generate(prompt, max_new_tokens=12, exact=True)
    genai = GenAIModel(model_dir, {"travel": model_dir / "adapter_weights.onnx_adapter"})
    expected = list(genai.tokens("Where to?", GenerationOptions(max_length=len(prompt) + 12), "travel"))
    assert answer.text == generator.tokenizer.decode(expected, skip_special_tokens=True)
    base_answer = open_generator(OnnxModel(path=model_dir), Accelerator("cpu", "CPUExecutionProvider"))
    assert base_answer.generate(prompt, max_new_tokens=12, exact=True).text != answer.text  # the adapter matters
