"""The GenAI builder on every architecture whose config.json transformers 5 writes in a new shape: the config it
is handed (olivepress.passes.onnx.builder_config), and the exported model's logits against transformers."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import builder_workflow
from tiny_architectures import ARCHITECTURES, write_tiny_architecture

from olivepress.errors import OlivepressError
from olivepress.passes.onnx.builder_config import BUILDER_INPUT_DIR, builder_input, normalized_config

PROMPT = [(i * 37 + 11) % 300 + 3 for i in range(48)]  # longer than the Gemma models' sliding window of 32

GEMMA3_ROPE = {"full_attention": {"rope_theta": 1000000.0, "rope_type": "default"},
               "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}


def test_per_layer_type_rope_is_flattened_with_the_local_theta_beside_it():
    config = {"architectures": ["Gemma3ForCausalLM"], "rope_parameters": GEMMA3_ROPE, "hidden_size": 64}
    assert normalized_config(config) == {
        "architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default", "rope_local_base_freq": 10000.0},
    }
    assert config["rope_parameters"] == GEMMA3_ROPE  # the input is left as it was


def test_longrope_gets_the_legacy_type_key_and_flat_configs_stay_as_they_are():
    longrope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0], "long_factor": [2.0]}
    assert normalized_config({"rope_parameters": longrope})["rope_parameters"] == {**longrope, "type": "longrope"}
    llama = {"architectures": ["LlamaForCausalLM"], "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}
    assert normalized_config(llama) == llama


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_builder_input_is_the_model_folder_unless_its_config_needs_a_rewrite(tmp_path):
    llama = write_config(tmp_path / "llama", {"architectures": ["LlamaForCausalLM"]})
    assert builder_input(llama, tmp_path / "scratch") == llama
    assert not (tmp_path / "scratch").exists()

    gemma = write_config(tmp_path / "gemma", {"architectures": ["Gemma3ForCausalLM"], "rope_parameters": GEMMA3_ROPE})
    patched = builder_input(gemma, tmp_path / "scratch")
    assert patched == tmp_path / "scratch" / BUILDER_INPUT_DIR
    assert (patched / "model.safetensors").resolve() == gemma / "model.safetensors"
    assert json.loads((patched / "config.json").read_text())["rope_parameters"]["rope_local_base_freq"] == 10000.0
    assert json.loads((gemma / "config.json").read_text())["rope_parameters"] == GEMMA3_ROPE


def test_an_architecture_the_builder_cannot_export_is_named_with_the_supported_ones(tmp_path):
    model = write_config(tmp_path / "gpt2", {"architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(OlivepressError) as raised:
        builder_input(model, tmp_path / "scratch")
    message = str(raised.value)
    assert message.startswith(f"{model / 'config.json'}: the GenAI builder does not export GPT2LMHeadModel; "
                              "it exports ChatGLMForConditionalGeneration, ChatGLMModel, Ernie4_5ForCausalLM, ")
    assert "Gemma3ForCausalLM" in message and "Qwen3ForCausalLM" in message and "\n" not in message


def genai_prefill_logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    return generator.get_output("logits")[0]


def transformers_logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_fp32_export_matches_transformers(architecture, tmp_path, write_doc, cli):
    model = write_tiny_architecture(tmp_path / architecture, architecture)
    code, _, err = cli("run", "--config", write_doc(builder_workflow(model, tmp_path, precision="fp32")))
    assert code == 0, err
    expected = transformers_logits(model, PROMPT)
    logits = genai_prefill_logits(tmp_path / "out" / "model", PROMPT)
    assert logits.shape == expected.shape == (len(PROMPT), 320)
    # measured: at most 7e-6 on logits up to 6.4 (Gemma's scaled embeddings)
    assert np.abs(logits - expected).max() < 1e-4


@pytest.mark.slow
def test_gemma3_int4_through_auto_opt_generates(tmp_path, cli):
    from olivepress.runtime.generate import GenAIModel, GenerationOptions

    model = write_tiny_architecture(tmp_path / "gemma3", "gemma3_text")
    code, out, err = cli("auto-opt", "-m", model, "--precision", "int4", "--use_ort_genai", "-o", tmp_path / "out",
                         "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    assert out.splitlines()[0] == "auto-opt: ModelBuilder(precision=int4, execution_provider=cpu)"
    built = tmp_path / "out" / "model"
    assert json.loads((built / "genai_config.json").read_text())["model"]["type"] == "gemma3_text"
    tokens = list(GenAIModel(built).tokens("What's a must-see in Paris?", GenerationOptions(max_length=48)))
    assert tokens and all(0 <= token < 320 for token in tokens)
    int4 = genai_prefill_logits(built, PROMPT)
    expected = transformers_logits(model, PROMPT)
    # int4 RTN of random weights: close to float in direction, not in value
    assert np.corrcoef(int4.ravel(), expected.ravel())[0, 1] > 0.9
