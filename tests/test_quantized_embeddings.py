"""Quantized input embeddings (Olive's `embeds`), stored as the tied LM head's table; RTN on a quantized checkpoint
(what it leaves float: the LM head, the embedding), as Olive's rtn does after gptq; float tensors stored in float16."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors import safe_open

from olivepress.quantization.checkpoint import load_quantized, save_quantized
from olivepress.quantization.qembedding import TiedQuantEmbedding
from olivepress.quantization.qlinear import QuantLinear
from olivepress.quantization.rtn import quantize_rtn

pytestmark = pytest.mark.usefixtures("one_thread")
EMBED_8_BIT = {"lm_head": True, "embeds": True, "group_size": 32,
               "overrides": {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}}


def write_tied_llama(folder: Path) -> Path:
    """The tiny Llama (hidden 64, 2 layers, 320 tokens) with its LM head tied to its input embedding, as SmolLM2's."""
    from tiny_models import write_tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig

    folder.mkdir(parents=True)
    config = LlamaConfig(vocab_size=write_tokenizer(folder), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1,
                         eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tied_llama(tmp_path_factory) -> Path:
    return write_tied_llama(tmp_path_factory.mktemp("models") / "tied-llama")


def run_passes(cli, write_doc, model: Path, tmp_path: Path, passes: dict, out: str) -> tuple[int, str, Path]:
    document = {"input_model": {"type": "HfModel", "model_path": str(model)}, "passes": passes,
                "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / out)}}
    code, _, err = cli("run", "--config", write_doc(document, f"{out}.json"))
    return code, err, tmp_path / out / "model"


def stored(folder: Path) -> dict[str, torch.Tensor]:
    with safe_open(folder / "model.safetensors", "pt") as weights:
        return {name: weights.get_tensor(name) for name in weights.keys()}


@pytest.mark.parametrize("fmt,bits", [("gptq", 4), ("gptq", 8), ("awq", 4)])
def test_tied_embedding_rows_are_the_heads_dequantized_rows(fmt, bits):
    weight = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    head = QuantLinear.from_weight(quantize_rtn(weight, bits, 16, sym=False), fmt, None)
    embedding = TiedQuantEmbedding(head, torch.float32)
    ids = torch.tensor([[3, 0, 63], [5, 5, 7]])
    assert torch.equal(embedding(ids), head.dequantize()[ids])
    assert embedding.to(torch.bfloat16)(ids).dtype == torch.bfloat16
    assert embedding.state_dict() == {}  # the table is the head's, stored once under lm_head


def test_the_quantize_command_stores_a_tied_table_once_as_the_calibrated_int4_head(tied_llama, tiny_llama, tmp_path,
                                                                                    cli):
    def quantize(model: Path, out: str, *flags: str) -> Path:
        code, _, err = cli("quantize", "-m", model, "--algorithm", "awq", "--group_size", "32", "--num_samples", "4",
                           "--seq_len", "64", "-o", tmp_path / out, *flags)
        assert code == 0, err
        return tmp_path / out / "model"

    folder = quantize(tied_llama, "tied")
    quantization = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert quantization["modules_to_not_convert"] == [] and quantization["embeds"] is True  # awq: no lm_head key
    tensors = stored(folder)
    assert "lm_head.qweight" in tensors and not [name for name in tensors if name.startswith("model.embed_tokens")]

    untied = json.loads((quantize(tiny_llama, "untied") / "config.json").read_text())["quantization_config"]
    assert untied["modules_to_not_convert"] == [] and "embeds" not in untied  # "tied" leaves it float
    float_head = stored(quantize(tied_llama, "float-head", "--float_lm_head"))
    assert "lm_head.qweight" not in float_head and "model.embed_tokens.weight" in float_head


def test_a_scaled_tied_embedding_keeps_its_scale(tmp_path, cli):
    """Gemma multiplies its embedding rows by sqrt(hidden); the table stored as the head's codes must too."""
    from tiny_models import write_tokenizer
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    folder = tmp_path / "tied-gemma3"
    folder.mkdir()
    config = Gemma3TextConfig(vocab_size=write_tokenizer(folder), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              sliding_window=32, layer_types=["sliding_attention", "full_attention"],
                              max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                              tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    code, _, err = cli("quantize", "-m", folder, "--algorithm", "rtn", "--group_size", "32", "-o", tmp_path / "q")
    assert code == 0, err

    loaded = load_quantized(tmp_path / "q" / "model", torch.float32)
    float_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rows = loaded.model.embed_tokens(ids)
        assert torch.equal(rows, loaded.lm_head.dequantize()[ids] * torch.tensor(64**0.5))
        float_rows = float_model.model.embed_tokens(ids)
        assert (rows - float_rows).abs().mean() < 0.1 * float_rows.abs().mean()


def test_rtn_with_embeds_stores_the_table_once_as_the_8_bit_head_and_loads_it_back(tied_llama, tmp_path, write_doc,
                                                                                   cli):
    from transformers import AutoModelForCausalLM

    code, err, folder = run_passes(cli, write_doc, tied_llama, tmp_path, {"r": {"type": "rtn", **EMBED_8_BIT}}, "rtn")
    assert code == 0, err
    tensors = stored(folder)
    assert not [name for name in tensors if name.startswith("model.embed_tokens")]
    assert tensors["lm_head.qweight"].shape == (64 // 4, 320)  # 8 bits: 4 codes per int32 word
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert config["quantization_config"]["embeds"] is True and config["quantization_config"]["lm_head"] is True

    loaded = load_quantized(folder, torch.float32)
    embedding, head = loaded.model.embed_tokens, loaded.lm_head
    assert isinstance(embedding, TiedQuantEmbedding) and embedding.head is head and head.bits == 8
    float_model = AutoModelForCausalLM.from_pretrained(tied_llama).eval()
    table = float_model.model.embed_tokens.weight
    ids = torch.randint(3, 320, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rows = embedding(ids)
        assert torch.equal(rows, head.dequantize()[ids])
        step = head.quantized_weight().scales.float().repeat_interleave(32, dim=1)[ids]
        assert ((rows - table[ids]).abs() <= step / 2 + 1e-6).all()  # round to nearest: within half a step
        logits, float_logits = loaded(ids).logits, float_model(ids).logits
    assert (logits - float_logits).abs().mean() < 0.25 * float_logits.abs().mean()  # int4 decoder layers

    from peft import LoraConfig, get_peft_model  # LoRA trains on this base as on any quantized one

    tuned = get_peft_model(loaded, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    tuned(ids, labels=ids).loss.backward()
    assert [name for name, p in tuned.named_parameters() if p.grad is not None] == [
        name for name, p in tuned.named_parameters() if "lora_" in name] != []


@pytest.mark.parametrize("model,passes,message", [
    ("untied", {"type": "rtn", **EMBED_8_BIT}, "embeds: the model does not tie its input embedding to its LM head"),
    ("tied", {"type": "rtn", **EMBED_8_BIT, "overrides": {"lm_head": {"bits": 8}}},
     "embeds: the embedding asks for bits 4, group_size 32, sym False and the LM head has bits 8, group_size 32, "
     "sym False; the tied table is quantized once, so they must match"),
])
def test_embeds_that_cannot_be_the_tied_head_are_refused(model, passes, message, tied_llama, tiny_llama, tmp_path,
                                                        write_doc, cli):
    folder = tied_llama if model == "tied" else tiny_llama
    code, err, _ = run_passes(cli, write_doc, folder, tmp_path, {"r": passes}, "refused")
    assert code == 2 and message in err.splitlines()[-1], err


@pytest.mark.slow
def test_rtn_after_gptq_quantizes_only_what_gptq_left_float(tied_llama, tmp_path, write_doc, cli):
    gptq = {"type": "GPTQ", "group_size": 32, "num_samples": 4, "seq_len": 32}
    code, err, first = run_passes(cli, write_doc, tied_llama, tmp_path, {"g": gptq}, "gptq")
    assert code == 0, err
    code, err, second = run_passes(cli, write_doc, first, tmp_path, {"r": {"type": "rtn", **EMBED_8_BIT}}, "rtn")
    assert code == 0, err
    before, after = stored(first), stored(second)
    layers = [name for name in before if name.startswith("model.layers.")]
    assert all(torch.equal(before[name], after[name]) for name in layers)  # GPTQ's layers as they were
    assert "model.embed_tokens.weight" in before and "model.embed_tokens.weight" not in after
    assert set(after) - set(before) == {"lm_head.qweight", "lm_head.qzeros", "lm_head.scales", "lm_head.g_idx"}
    settings = json.loads((second / "config.json").read_text())["quantization_config"]
    assert (settings["bits"], settings["group_size"], settings["modules_to_not_convert"]) == (4, 32, [])
    assert settings["meta"]["algorithm"] == "gptq"
    assert {key: settings["meta"]["followed_by"][0][key] for key in ("algorithm", "modules")} == {
        "algorithm": "rtn", "modules": ["lm_head"]}
    assert settings["dynamic"] == {r"+:^lm_head\.": {"bits": 8, "group_size": 32}}
    loaded = load_quantized(second, torch.float32)
    assert loaded.model.layers[1].mlp.down_proj.fmt == "gptq" and isinstance(loaded.model.embed_tokens, TiedQuantEmbedding)

    code, err, _ = run_passes(cli, write_doc, second, tmp_path, {"r": {"type": "rtn", "lm_head": True}}, "again")
    assert code == 2 and err.splitlines()[-1].endswith(
        "every linear the pass would quantize is quantized already; set lm_head: true (or embeds: true) to quantize "
        "what stays float"), err
    code, err, _ = run_passes(cli, write_doc, second, tmp_path, {"g": gptq}, "gptq-again")
    assert code == 2 and "the model is already quantized (quantization_config.quant_method 'gptq'); GPTQ needs " \
        "the float model" in err


@pytest.mark.slow
def test_rtn_refuses_an_awq_checkpoint(tied_llama, tmp_path, write_doc, cli):
    awq = {"type": "AWQ", "group_size": 32, "num_samples": 4, "seq_len": 32}
    code, err, first = run_passes(cli, write_doc, tied_llama, tmp_path, {"a": awq}, "awq")
    assert code == 0, err
    code, err, _ = run_passes(cli, write_doc, first, tmp_path, {"r": {"type": "rtn", "lm_head": True}}, "rtn")
    assert code == 2 and (f"{first}/config.json: the model is already quantized (quant_method 'awq', written by "
                          f"olivepress ") in err and "RTN adds modules to olivepress's own gptq checkpoints" in err


@pytest.mark.slow
def test_the_builder_gathers_the_tied_8_bit_table_from_the_head(tied_llama, tmp_path, write_doc, cli):
    code, err, built = run_passes(cli, write_doc, tied_llama, tmp_path, {
        "r": {"type": "rtn", **EMBED_8_BIT}, "m": {"type": "ModelBuilder", "precision": "int4"}}, "built")
    assert code == 0, err
    graph = onnx.load(str(built / "model.onnx"), load_external_data=False).graph
    gather = next(node for node in graph.node if node.op_type == "GatherBlockQuantized")
    head = next(node for node in graph.node if node.output[0] == "logits")
    assert head.op_type == "MatMulNBits" and gather.input[2:4] == head.input[2:4]
    assert {a.name: a.i for a in gather.attribute}["bits"] == 8

    import onnxruntime as ort

    session = ort.InferenceSession(str(built / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[5, 17, 42, 99, 7, 12]])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feed |= {value.name: np.zeros((1, 2, 0, 16), dtype=np.float32) for value in session.get_inputs()
             if value.name.startswith("past_key_values")}
    code, err, folder = run_passes(cli, write_doc, tied_llama, tmp_path, {"r": {"type": "rtn", **EMBED_8_BIT}}, "hf")
    assert code == 0, err
    with torch.no_grad():
        expected = load_quantized(folder, torch.float32)(torch.tensor(ids)).logits.numpy()
    # measured 1% of the largest logit: MatMulNBits's accuracy_level 4 quantizes the activations to int8
    assert np.abs(session.run(None, feed)[0] - expected).max() < 0.03 * np.abs(expected).max()

    code, err, _ = run_passes(cli, write_doc, folder, tmp_path, {"m": {"type": "ModelBuilder", "precision": "fp32"}},
                              "fp32")
    assert code == 2 and "its input embedding is stored as the quantized LM head's table (quantization_config.embeds), " \
        "which the GenAI builder reads with precision int4" in err


def test_float32_matrices_are_stored_in_float16_unless_out_of_its_range(tied_llama, tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    settings = {"quant_method": "gptq", "bits": 4, "group_size": 32}
    save_quantized(AutoModelForCausalLM.from_pretrained(tied_llama), tied_llama, tmp_path / "tied", settings)
    tensors = stored(tmp_path / "tied")
    assert tensors["model.embed_tokens.weight"].dtype == torch.float16 and "lm_head.weight" not in tensors
    assert tensors["model.norm.weight"].dtype == torch.float32  # vectors stay as they are
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = 1e6  # beyond float16's 65504
    save_quantized(model, tiny_llama, tmp_path / "untied", settings)
    tensors = stored(tmp_path / "untied")
    assert (tensors["lm_head.weight"].dtype, tensors["model.embed_tokens.weight"].dtype) == (torch.float32,
                                                                                             torch.float16)

