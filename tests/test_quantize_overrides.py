"""Olive's parameters of the rtn and gptq passes: lm_head, embeds and per-module overrides, their checkpoint (GPTQModel's
`dynamic` entry, which the GenAI builder reads per layer) and the mixed-precision choice read from config.json."""

import json
import logging

import pytest
import torch
from pydantic import ValidationError
from test_quantization import as_stored

from olivepress.errors import OlivepressError
from olivepress.passes.pytorch.quantize import AWQConfig, GPTQConfig, RTNConfig
from olivepress.quantization.algorithms import plan, quantize_model
from olivepress.quantization.checkpoint import (
    load_quantized,
    module_bits_and_group_size,
    quantization_config,
    save_quantized,
)
from olivepress.quantization.options import ModuleOverride
from olivepress.quantization.qlinear import QuantLinear
from olivepress.quantization.rtn import quantize_rtn

logger = logging.getLogger("olivepress.test")
pytestmark = pytest.mark.usefixtures("one_thread")

DOWN = "model.layers.0.mlp.down_proj"
ROWS = torch.randint(3, 300, (8, 32), generator=torch.Generator().manual_seed(0))


def quantize(model_dir, out, config):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    options = config.options()
    quant_plan, group_size = plan(model, options, logger)
    quantize_model(model, options, quant_plan, group_size, ROWS, torch.device("cpu"))
    save_quantized(model, model_dir, out, quantization_config(options, group_size, {}))
    return as_stored(model)


def float_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


@pytest.mark.slow
def test_rtn_overrides_give_the_named_modules_their_bits_and_the_folder_loads_back(tiny_llama, tmp_path):
    config = RTNConfig(bits=4, group_size=32, lm_head=True, overrides={DOWN: {"bits": 8}, "lm_head": {"bits": 8},
                                                                         "model.embed_tokens": {"bits": 8}})
    in_memory = quantize(tiny_llama, tmp_path / "q", config)
    reference = float_model(tiny_llama)
    loaded = load_quantized(tmp_path / "q", torch.float32)

    down, head = loaded.get_submodule(DOWN), loaded.lm_head
    assert isinstance(head, QuantLinear) and (down.bits, head.bits) == (8, 8)
    assert loaded.model.layers[0].self_attn.q_proj.bits == 4 and loaded.model.layers[1].mlp.down_proj.bits == 4
    # gptq layout at 8 bits: 4 codes per int32 word along the input dimension
    assert tuple(down.qweight.shape) == (128 // 4, 64) and tuple(down.qzeros.shape) == (128 // 32, 64 // 4)
    expected = quantize_rtn(reference.get_submodule(DOWN).weight.detach(), 8, 32, False)
    assert torch.equal(down.quantized_weight().codes, expected.codes)
    assert torch.equal(down.quantized_weight().scales, expected.scales)
    assert type(loaded.model.embed_tokens) is torch.nn.Embedding  # embeds stays float: the override does nothing

    settings = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert settings["bits"] == 4 and settings["lm_head"] is True
    assert settings["dynamic"] == {r"+:^model\.layers\.0\.mlp\.down_proj\.": {"bits": 8, "group_size": 32},
                                   r"+:^lm_head\.": {"bits": 8, "group_size": 32}}

    ids = torch.randint(3, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, float_logits = loaded(ids).logits, reference(ids).logits
        assert torch.equal(logits, in_memory(ids).logits)
        # the 8-bit layers are within half a step of float; the whole model stays near it (int4 of random weights)
        step = down.quantized_weight().scales.float().repeat_interleave(32, dim=1)
        assert ((down.dequantize() - reference.get_submodule(DOWN).weight).abs() <= step / 2 + 1e-6).all()
        assert (logits - float_logits).abs().mean() < 0.25 * float_logits.abs().mean()


@pytest.mark.slow
def test_an_override_inside_a_shared_input_splits_the_gptq_stack(tiny_llama, tmp_path):
    query = "model.layers.1.self_attn.q_proj"
    in_memory = quantize(tiny_llama, tmp_path / "q", GPTQConfig(group_size=32, overrides={query: {"bits": 8}}))
    loaded = load_quantized(tmp_path / "q", torch.float32)
    attention = loaded.model.layers[1].self_attn
    assert (attention.q_proj.bits, attention.k_proj.bits, attention.v_proj.bits) == (8, 4, 4)
    assert tuple(attention.q_proj.qweight.shape) == (64 // 4, 64)
    reference = float_model(tiny_llama).get_submodule(query).weight
    # GPTQ at 8 bits lands far closer to float than at 4 bits (k_proj, same input)
    error8 = (attention.q_proj.dequantize() - reference).abs().mean()
    error4 = (attention.k_proj.dequantize() - float_model(tiny_llama).model.layers[1].self_attn.k_proj.weight).abs().mean()
    assert error8 < 0.1 * error4
    with torch.no_grad():
        assert torch.equal(loaded(ROWS).logits, in_memory(ROWS).logits)


def test_the_builder_reads_the_same_bits_per_layer_as_olivepress():
    from onnxruntime_genai.models.loaders.gptq import GPTQModel

    settings = {"bits": 4, "group_size": 32, "dynamic": {r"+:^model\.layers\.1\.mlp\.down_proj\.": {"bits": 8, "group_size": 32}}}
    reader = GPTQModel.__new__(GPTQModel)  # only the override lookup: no checkpoint to read
    reader.overrides, reader.global_bits, reader.global_group_size = settings["dynamic"], 4, 32
    for name, bits in (("model.layers.1.mlp.down_proj", 8), ("model.layers.11.mlp.down_proj", 4),
                       ("model.layers.1.mlp.up_proj", 4)):
        assert GPTQModel.get_layer_bits(reader, f"{name}.qweight") == bits
        assert module_bits_and_group_size(settings, name) == (bits, 32)


def test_mixed_precision_info_sets_the_defaults_and_the_pass_overrides_win():
    info = {"default": {"bits": 4, "group_size": 64, "symmetric": True},
            "overrides": {DOWN: {"bits": 8, "group_size": 64, "symmetric": True}, "lm_head": {"bits": 8}}}
    options = RTNConfig(bits=8, group_size=128, overrides={DOWN: {"symmetric": False}}).options(info)
    assert (options.bits, options.group_size, options.sym) == (4, 64, True)  # as Olive: the choice's defaults
    assert options.overrides == {DOWN: ModuleOverride(bits=8, group_size=64, sym=False),
                                 "lm_head": ModuleOverride(bits=8)}
    assert (options.for_module(DOWN).bits, options.for_module("model.layers.1.mlp.down_proj").bits) == (8, 4)


def test_lm_head_true_quantizes_the_lm_head():
    assert RTNConfig(lm_head=True).options().modules_to_not_convert == ()
    assert RTNConfig().options().modules_to_not_convert == ("lm_head",)


def test_embeds_true_needs_the_lm_head_quantized_in_one_line():
    with pytest.raises(ValidationError, match="a quantized input embedding is stored as the tied LM head's table, so "
                                              "the LM head must be quantized too: set lm_head: true"):
        RTNConfig(embeds=True)
    assert RTNConfig(embeds=True, lm_head=True).embeds and RTNConfig(embeds=True, modules_to_not_convert=[]).embeds


@pytest.mark.parametrize("config,message", [
    (RTNConfig(overrides={"model.layers.0.mlp.gate": {"bits": 8}}),
     "overrides.model.layers.0.mlp.gate: the model has no module of that name"),
    (RTNConfig(overrides={DOWN: {"bits": 3}}),
     rf"rtn cannot quantize {DOWN} \(overrides.{DOWN}\): the gptq format holds 4 or 8-bit weights, not 3-bit"),
    (AWQConfig(overrides={DOWN: {"group_size": 64}}),
     f"overrides.{DOWN}: AWQ quantizes every layer with the same bits, group_size and sym"),
])
def test_overrides_that_cannot_be_honoured_are_refused(config, message, tiny_llama):
    with pytest.raises(OlivepressError, match=message):
        plan(float_model(tiny_llama), config.options(), logger)


def test_an_override_group_size_must_be_a_matmulnbits_block():
    with pytest.raises(ValidationError, match="group_size 24: MatMulNBits needs a power of two >= 16"):
        RTNConfig(overrides={DOWN: {"group_size": 24}})


@pytest.mark.slow
def test_model_builder_reads_the_per_layer_bits(tiny_llama, tmp_path, write_doc, cli):
    import onnx

    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"r": {"type": "rtn", "bits": 4, "group_size": 32, "overrides": {DOWN: {"bits": 8}}},
                   "m": {"type": "ModelBuilder", "precision": "int4"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    graph = onnx.load(str(tmp_path / "out" / "model" / "model.onnx"), load_external_data=False).graph
    bits = {node.name: next(a.i for a in node.attribute if a.name == "bits")
            for node in graph.node if node.op_type == "MatMulNBits"}
    assert bits.pop("/model/layers.0/mlp/down_proj/MatMulNBits") == 8
    assert set(bits.values()) == {4}
