"""The torch quantizers (RTN, AWQ, GPTQ), the awq/gptq packing, QuantLinear and the quantized checkpoint."""

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from olivepress.errors import OlivepressError
from olivepress.passes.pytorch.quantize import AWQConfig, GPTQConfig, RTNConfig
from olivepress.quantization.algorithms import plan, quantize_model
from olivepress.quantization.awq import fold_scales, norm_offset, scale_groups, search_scales
from olivepress.quantization.checkpoint import (
    load_quantized,
    quantization_config,
    save_quantized,
)
from olivepress.quantization.clip import clip_weight
from olivepress.quantization.gptq import gptq_quantize
from olivepress.quantization.groups import choose_group_size
from olivepress.quantization.layers import find_decoder_layers
from olivepress.quantization.layerwise import InputStats
from olivepress.quantization.options import AwqOptions, GptqOptions, RtnOptions
from olivepress.quantization.packing import QuantizedWeight, pack, unpack
from olivepress.quantization.qlinear import QuantLinear
from olivepress.quantization.rtn import fake_quantize, quantize_rtn

logger = logging.getLogger("olivepress.test")


pytestmark = pytest.mark.usefixtures("one_thread")


def random_weight(out_features: int, in_features: int, bits: int, group_size: int, seed: int = 0) -> QuantizedWeight:
    generator = torch.Generator().manual_seed(seed)
    groups = in_features // group_size
    return QuantizedWeight(
        codes=torch.randint(0, 2**bits, (out_features, in_features), generator=generator, dtype=torch.uint8),
        zeros=torch.randint(0, 2**bits, (out_features, groups), generator=generator, dtype=torch.uint8),
        scales=(torch.rand(out_features, groups, generator=generator) * 0.1 + 1e-3).half(),
        bits=bits, group_size=group_size,
    )


def output_error(x: torch.Tensor, weight: torch.Tensor, quantized: torch.Tensor) -> float:
    return float((x @ weight.t() - x @ quantized.t()).pow(2).sum())


def stats_of(x: torch.Tensor) -> InputStats:
    stats = InputStats.empty(x.shape[1], x.device)
    stats.add(x)
    return stats


# ---------------------------------------------------------------- options, built by the pass configs

CALIBRATION_FIELDS = {"data_config", "num_samples", "seq_len"}  # the pass reads them; the quantizers get the rows
# lm_head folds into modules_to_not_convert; embeds is the pass's (tests/test_quantized_embeddings.py); Olive 0.6's
# pack_model_for_onnx_conversion is accepted with a warning and changes nothing
FOLDED_FIELDS = {"lm_head", "embeds", "pack_model_for_onnx_conversion"}


def test_each_pass_config_builds_its_algorithms_options_with_the_documented_defaults():
    kept = ("lm_head",)
    assert RTNConfig().options() == RtnOptions(bits=4, group_size=128, sym=False, modules_to_not_convert=kept)
    assert AWQConfig().options() == AwqOptions(bits=4, group_size=128, sym=False, modules_to_not_convert=kept,
                                               n_grid=20, duo_scaling=True, apply_clip=True, gptq_rounding=False)
    # desc_act: the documented default (act order with static groups), which the GPTQ pass has always run with
    assert GPTQConfig().options() == GptqOptions(bits=4, group_size=128, sym=False, modules_to_not_convert=kept,
                                                 damp_percent=0.01, desc_act=True, block_size=128, apply_clip=True)


@pytest.mark.parametrize("config_class", [RTNConfig, AWQConfig, GPTQConfig])
def test_every_quantizer_field_of_a_pass_config_reaches_its_options(config_class):
    options_fields = {field.name for field in dataclasses.fields(config_class.options_class)}
    assert options_fields == set(config_class.model_fields) - CALIBRATION_FIELDS - FOLDED_FIELDS


def test_values_set_in_the_config_reach_the_options_and_the_checkpoint_meta():
    options = GPTQConfig(bits=8, group_size=32, sym=True, damp_percent=0.05, desc_act=False, block_size=64,
                         apply_clip=False, modules_to_not_convert=[]).options()
    assert options == GptqOptions(bits=8, group_size=32, sym=True, modules_to_not_convert=(), damp_percent=0.05,
                                  desc_act=False, block_size=64, apply_clip=False)
    meta = quantization_config(options, 16, {})["meta"]
    assert {key: meta[key] for key in ("algorithm", "sym", "group_size_requested")} == {
        "algorithm": "gptq", "sym": True, "group_size_requested": 32}
    assert options.algorithm_options() == {"damp_percent": 0.05, "desc_act": False, "block_size": 64, "apply_clip": False}
    assert list(meta)[-4:] == ["damp_percent", "desc_act", "block_size", "apply_clip"]


def test_the_pass_configs_and_their_options_load_without_torch():
    import subprocess
    import sys

    code = "import sys, olivepress.passes.pytorch.quantize; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("fmt,bits", [("awq", 4), ("gptq", 4), ("gptq", 8)])
@pytest.mark.parametrize("shape,group_size", [((8, 16), 16), ((64, 128), 32), ((24, 256), 128)])
def test_pack_unpack_round_trips_exactly(fmt, bits, shape, group_size):
    weight = random_weight(*shape, bits, group_size)
    restored = unpack(fmt, pack(fmt, weight), bits, group_size)
    assert torch.equal(restored.codes, weight.codes)
    assert torch.equal(restored.zeros, weight.zeros)
    assert torch.equal(restored.scales, weight.scales)


def test_packed_shapes_and_dtypes_are_those_of_the_formats():
    weight = random_weight(64, 128, 4, 32)
    awq = pack("awq", weight)
    assert {k: (tuple(v.shape), v.dtype) for k, v in awq.items()} == {
        "qweight": ((128, 8), torch.int32), "qzeros": ((4, 8), torch.int32), "scales": ((4, 64), torch.float16)}
    gptq = pack("gptq", weight)
    assert {k: (tuple(v.shape), v.dtype) for k, v in gptq.items()} == {
        "qweight": ((16, 64), torch.int32), "qzeros": ((4, 8), torch.int32), "scales": ((4, 64), torch.float16),
        "g_idx": ((128,), torch.int32)}
    assert torch.equal(gptq["g_idx"], torch.arange(128, dtype=torch.int32) // 32)
    # gptq stores zero - 1: the lowest nibble of the first word is the first output channel's zero minus one
    assert int(gptq["qzeros"][0, 0]) & 0xF == (int(weight.zeros[0, 0]) - 1) % 16


def unpack_bytes(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 bytes -> values, lowest bits first (MatMulNBits' weight and zero-point layout)."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8)
    return ((packed.unsqueeze(-1) >> shifts) & (2**bits - 1)).reshape(*packed.shape[:-1], -1)


@pytest.mark.parametrize("fmt,bits", [("awq", 4), ("gptq", 4), ("gptq", 8)])
def test_the_genai_builder_reader_repacks_the_same_codes_for_matmulnbits(fmt, bits):
    """The builder's own reader (onnxruntime_genai/models/loaders) turns the packed tensors into exactly these
    codes, zero points and scales in MatMulNBits' layout."""
    from onnxruntime_genai.models.loaders.awq import AWQModel
    from onnxruntime_genai.models.loaders.base import QuantizedTensorModule
    from onnxruntime_genai.models.loaders.gptq import GPTQModel

    weight = random_weight(32, 64, bits, 16, seed=3)
    module = QuantizedTensorModule()
    for name, tensor in pack(fmt, weight).items():
        setattr(module, name, tensor)
    module.bits, module.group_size = bits, 16
    reader = object.__new__(AWQModel if fmt == "awq" else GPTQModel)
    reader.set_quantized_tensor_properties(module)
    assert (module.in_features, module.out_features) == (64, 32)
    reader.repack_quantized_tensor(module, clear_g_idx=True)
    assert module.qweight.shape == (32, 4, 16 * bits // 8)  # [N, k_blocks, blob_size]
    assert torch.equal(unpack_bytes(module.qweight, bits).reshape(32, 64), weight.codes)
    assert torch.equal(unpack_bytes(module.qzeros.reshape(32, -1), bits)[:, :4], weight.zeros)
    assert torch.equal(module.scales.reshape(32, 4), weight.scales)


# ---------------------------------------------------------------- RTN, GPTQ, AWQ


@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("bits", [4, 8])
def test_rtn_is_within_half_a_step_of_the_weight(sym, bits):
    weight = torch.randn(48, 128) * torch.rand(48, 1) * 3
    weight[0, :32] += 5  # a group that is all positive
    quantized = quantize_rtn(weight, bits, 32, sym)
    step = quantized.scales.float().repeat_interleave(32, dim=1)
    assert torch.all((quantized.dequantize() - weight).abs() <= step / 2 * (1 + 1e-5))
    assert int(quantized.codes.max()) <= 2**bits - 1
    if sym:
        assert torch.all(quantized.zeros == 2 ** (bits - 1))


@pytest.mark.parametrize("desc_act", [False, True])
def test_gptq_gives_valid_codes_and_less_output_error_than_rtn(desc_act):
    torch.manual_seed(0)
    x = torch.randn(512, 64) @ torch.randn(64, 64)  # correlated inputs, where error feedback pays
    weight = torch.randn(32, 64)
    options = GPTQConfig(group_size=16, sym=True, desc_act=desc_act, block_size=32).options()
    quantized = gptq_quantize(weight, stats_of(x).hessian, options)
    assert quantized.codes.shape == (32, 64) and quantized.scales.shape == (32, 4)
    assert int(quantized.codes.max()) <= 15 and torch.all(quantized.zeros == 8)
    rtn = quantize_rtn(weight, 4, 16, sym=True)
    assert output_error(x, weight, quantized.dequantize()) < 0.7 * output_error(x, weight, rtn.dequantize())


def test_awq_scale_search_beats_rtn_on_planted_outlier_channels():
    torch.manual_seed(0)
    x = torch.randn(1024, 64)
    x[:, [3, 17, 40]] *= 40  # a few input channels with large activations, as AWQ observes in LLMs
    weight = torch.randn(96, 64) * 0.05
    options = AWQConfig(group_size=32).options()
    scales = search_scales([weight], stats_of(x), options)
    awq = fake_quantize(weight * scales, 4, 32, sym=False) / scales
    rtn = fake_quantize(weight, 4, 32, sym=False)
    assert not torch.allclose(scales, torch.ones_like(scales))
    assert scales[[3, 17, 40]].min() > scales.median()  # the salient channels are scaled up
    assert output_error(x, weight, awq) < 0.5 * output_error(x, weight, rtn)


def test_clipping_lowers_the_output_error():
    torch.manual_seed(1)
    x = torch.randn(256, 64)
    x[:, 5] *= 0.01  # a nearly silent input channel ...
    weight = torch.randn(16, 64)
    weight[:, 5] *= 8  # ... whose large weights stretch their groups' ranges for nothing
    clipped = clip_weight(weight, stats_of(x).hessian, bits=4, group_size=32, sym=False)
    shrunk = clipped[:, :32].abs().amax(dim=1) < weight[:, :32].abs().amax(dim=1)
    assert int(shrunk.sum()) >= 12  # most rows' first group gives up part of its range
    quantized = fake_quantize(clipped, 4, 32, sym=False)
    assert output_error(x, weight, quantized) < output_error(x, weight, fake_quantize(weight, 4, 32, sym=False))


@pytest.mark.parametrize("architecture", ["llama", "phi3"])
@pytest.mark.parametrize("kv_heads", [2, 4])
def test_folding_awq_scales_keeps_the_float_layer_unchanged(architecture, kv_heads):
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    config_class = LlamaConfig if architecture == "llama" else Phi3Config
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_class(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=kv_heads, pad_token_id=0)).eval()
    ids = torch.randint(1, 64, (2, 12))
    with torch.no_grad():
        before = model(ids).logits
        layer = model.model.layers[0]
        groups = scale_groups(layer, [name for name, module in layer.named_modules() if isinstance(module, nn.Linear)])
        for group in groups:
            fold_scales(layer, group, torch.rand(layer.get_submodule(group.linears[0]).in_features) + 0.5)
        after = model(ids).logits
    prevs = {"llama": ["input_layernorm", "self_attn.v_proj", "post_attention_layernorm", "mlp.up_proj"],
             "phi3": ["input_layernorm", "self_attn.qkv_proj", "post_attention_layernorm", "mlp.gate_up_proj"]}
    expected = [prev for prev in prevs[architecture] if kv_heads == 4 or "self_attn" not in prev]  # GQA: no v -> o
    assert [group.prev for group in groups] == expected
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("architecture,mlp_norm", [
    ("gemma", "post_attention_layernorm"), ("gemma2", "pre_feedforward_layernorm"),
    ("gemma3_text", "pre_feedforward_layernorm"),
])
def test_awq_folds_scales_into_gemma_norms_keeping_the_float_model_unchanged(architecture, mlp_norm):
    from tiny_architectures import ARCHITECTURES
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(architecture, vocab_size=64, hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, pad_token_id=0,
                                  **ARCHITECTURES[architecture])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    ids = torch.randint(1, 64, (2, 40))
    with torch.no_grad():
        before = model(ids).logits
        for layer in model.model.layers:
            assert norm_offset(layer.input_layernorm) == pytest.approx(1.0)  # Gemma's norms scale by (1 + weight)
            groups = scale_groups(layer, [name for name, module in layer.named_modules() if isinstance(module, nn.Linear)])
            assert [group.prev for group in groups] == ["input_layernorm", "self_attn.v_proj", mlp_norm, "mlp.up_proj"]
            for group in groups:
                fold_scales(layer, group, torch.rand(layer.get_submodule(group.linears[0]).in_features) + 0.5)
        after = model(ids).logits
    assert torch.allclose(before, after, atol=1e-4 * before.abs().max())


def test_norm_offset_tells_llama_norms_from_gemma_norms_and_refuses_other_modules():
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    assert norm_offset(LlamaRMSNorm(16)) == 0.0
    assert norm_offset(nn.LayerNorm(16)) == 0.0
    assert norm_offset(GemmaRMSNorm(16)) == pytest.approx(1.0)
    assert norm_offset(nn.Linear(16, 16)) is None
    assert norm_offset(nn.Embedding(16, 16)) is None
    norm = GemmaRMSNorm(16)
    with torch.no_grad():
        norm.weight.normal_()
    kept = norm.weight.detach().clone()
    norm_offset(norm)
    assert torch.equal(norm.weight, kept)  # the probe puts the weight back


# ---------------------------------------------------------------- group size and layers


def test_group_size_falls_back_to_the_builders_block_size_or_the_largest_power_of_two_below(caplog):
    sizes = {"model.layers.0.self_attn.q_proj": 576, "model.layers.0.mlp.down_proj": 1536,
             "model.layers.1.self_attn.q_proj": 576, "model.layers.1.mlp.down_proj": 1536, "lm_head": 576}
    with caplog.at_level(logging.WARNING, logger="olivepress.test"):
        assert choose_group_size(128, sizes, logger) == 32  # 64 would divide 576 too, but quantizes worse
    assert caplog.messages == ["group_size 128 does not divide in_features 576 (model.layers.0.self_attn.q_proj and "
                               "2 more); using group_size 32"]
    assert choose_group_size(32, sizes, logger) == 32
    assert choose_group_size(64, {"a.q_proj": 64, "a.down_proj": 80}, logger) == 16
    assert choose_group_size(32, {"a.q_proj": 48}, logger) == 16


def test_group_size_error_names_the_layer_and_the_sizes_that_divide_it():
    with pytest.raises(OlivepressError) as error:
        choose_group_size(64, {"a.q_proj": 64, "a.down_proj": 40}, logger)
    assert str(error.value) == (
        "group_size 64: no power-of-two group size >= 16 divides the in_features of every quantized layer; "
        "a.down_proj has in_features 40, which only power-of-two group sizes 1, 2, 4, 8 divide "
        "(MatMulNBits needs one block size >= 16 for all layers)")


def test_a_model_without_known_decoder_layers_is_refused():
    model = nn.Module()
    model.blocks = nn.ModuleList([nn.Linear(4, 4)])
    with pytest.raises(OlivepressError, match=r"cannot find the decoder layers of Module: tried model\.layers, "
                                              r"model\.language_model\.layers, .*gpt_neox\.layers"):
        find_decoder_layers(model)


def test_decoder_layer_modules_cannot_be_kept_float(tiny_llama):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    options = RTNConfig(group_size=32, modules_to_not_convert=["lm_head", "down_proj"]).options()
    with pytest.raises(OlivepressError, match=r"modules_to_not_convert: model\.layers\.0\.mlp\.down_proj is inside a "
                                              r"decoder layer; the GenAI builder reads every decoder-layer linear"):
        plan(model, options, logger)


# ---------------------------------------------------------------- QuantLinear and the checkpoint


CONFIGS = {"rtn": RTNConfig, "awq": AWQConfig, "gptq": GPTQConfig}


def quantize_tiny(model_dir: Path, out: Path, algorithm: str, **config) -> nn.Module:
    """Quantize with the pass config's options (group size 32 unless given), as the pass does."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    options = CONFIGS[algorithm](**{"group_size": 32, **config}).options()
    quant_plan, group_size = plan(model, options, logger)
    rows = torch.randint(3, 300, (8, 32), generator=torch.Generator().manual_seed(0))
    quantize_model(model, options, quant_plan, group_size, rows, torch.device("cpu"))
    save_quantized(model, model_dir, out, quantization_config(options, group_size, {}))
    return as_stored(model)


def as_stored(model: nn.Module) -> nn.Module:
    """`model` with its float32 matrices rounded to float16, as save_quantized writes them."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dtype == torch.float32 and parameter.dim() >= 2:
                parameter.copy_(parameter.half().float())
    return model


def dequantized_reference(float_dir: Path, quantized: nn.Module) -> nn.Module:
    """The float model with each quantized linear's weight replaced by QuantLinear.dequantize(): plain F.linear;
    its other weights are the quantized model's (AWQ folds scales into the norms; the folder holds them in float16)."""
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(float_dir).eval()
    with torch.no_grad():
        for name, module in quantized.named_modules():
            if isinstance(module, QuantLinear):
                reference.get_submodule(name).weight.copy_(module.dequantize())
        for name, parameter in quantized.named_parameters():
            reference.get_parameter(name).copy_(parameter)
    return reference


def test_float_tensors_are_stored_in_float16_and_quantized_ones_as_they_were(tiny_llama, tmp_path):
    from safetensors import safe_open

    quantize_tiny(tiny_llama, tmp_path / "q", "rtn")
    with safe_open(tmp_path / "q" / "model.safetensors", "pt") as weights:
        dtypes = {name: weights.get_tensor(name).dtype for name in weights.keys()}
    assert {dtypes[name] for name in ("model.embed_tokens.weight", "lm_head.weight")} == {torch.float16}
    assert {dtypes[name] for name in ("model.norm.weight", "model.layers.0.input_layernorm.weight")} == {torch.float32}
    assert {dtype for name, dtype in dtypes.items() if name.endswith(("qweight", "qzeros", "g_idx"))} == {torch.int32}
    assert {dtype for name, dtype in dtypes.items() if name.endswith("scales")} == {torch.float16}
    assert load_quantized(tmp_path / "q", torch.float32).model.embed_tokens.weight.dtype == torch.float32


@pytest.mark.parametrize("algorithm", ["rtn", "awq", "gptq"])
def test_quantized_folder_loads_back_and_matches_the_float_model_loosely(algorithm, tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    in_memory = quantize_tiny(tiny_llama, tmp_path / "q", algorithm)
    loaded = load_quantized(tmp_path / "q", torch.float32)
    ids = torch.randint(3, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = loaded(ids).logits
        reference = dequantized_reference(tiny_llama, loaded)(ids).logits
        float_logits = AutoModelForCausalLM.from_pretrained(tiny_llama)(ids).logits
    assert torch.allclose(logits, in_memory(ids).logits)
    assert torch.allclose(logits, reference, atol=1e-5)
    assert 0 < (logits - float_logits).abs().mean() < 0.25 * float_logits.abs().mean()  # int4 of random weights
    assert isinstance(loaded.model.layers[1].mlp.down_proj, QuantLinear)
    assert type(loaded.lm_head) is nn.Linear
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json"]


def test_awq_with_gptq_rounding_writes_an_awq_folder_closer_to_float_than_round_to_nearest(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    rows = torch.randint(3, 300, (8, 32), generator=torch.Generator().manual_seed(0))  # quantize_tiny's rows
    with torch.no_grad():
        float_logits = AutoModelForCausalLM.from_pretrained(tiny_llama)(rows).logits
        errors = {}
        for rounding in (False, True):
            quantize_tiny(tiny_llama, tmp_path / str(rounding), "awq", gptq_rounding=rounding)
            loaded = load_quantized(tmp_path / str(rounding), torch.float32)
            assert loaded.model.layers[0].mlp.down_proj.fmt == "awq"
            errors[rounding] = float((loaded(rows).logits - float_logits).pow(2).mean())
    assert errors[True] < 0.9 * errors[False]


@pytest.mark.parametrize("algorithm", ["awq", "gptq"])
def test_calibrated_quantizers_round_the_lm_head_with_gptq_on_its_inputs(algorithm, tiny_llama):
    """The head's output error on the calibration rows is well under round-to-nearest's, measured on the head's
    inputs as the float model computes them (AWQ leaves the float function unchanged; GPTQ's quantized layers change
    them a little)."""
    from transformers import AutoModelForCausalLM

    rows = torch.randint(3, 300, (8, 32), generator=torch.Generator().manual_seed(0))
    float_model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    with torch.no_grad():
        head_inputs = float_model.model(input_ids=rows).last_hidden_state.reshape(-1, float_model.config.hidden_size)
    weight = float_model.lm_head.weight.detach()
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    options = CONFIGS[algorithm](group_size=32, lm_head=True).options()
    quant_plan, group_size = plan(model, options, logger)
    assert "lm_head" in quant_plan.outer_linears
    quantize_model(model, options, quant_plan, group_size, rows, torch.device("cpu"))
    calibrated = model.lm_head.dequantize()
    nearest = quantize_rtn(weight, 4, 32, sym=False).dequantize()
    assert output_error(head_inputs, weight, calibrated) < 0.8 * output_error(head_inputs, weight, nearest)


def test_rtn_rounds_the_lm_head_to_nearest(tiny_llama):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    weight = model.lm_head.weight.detach().clone()
    options = RTNConfig(group_size=32, lm_head=True).options()
    quant_plan, group_size = plan(model, options, logger)
    quantize_model(model, options, quant_plan, group_size, None, torch.device("cpu"))
    assert torch.equal(model.lm_head.quantized_weight().codes, quantize_rtn(weight, 4, 32, sym=False).codes)


def test_a_tied_lm_head_stays_tied_to_the_embedding(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        tie_word_embeddings=True)).save_pretrained(tmp_path / "tied")
    in_memory = quantize_tiny(tmp_path / "tied", tmp_path / "q", "rtn")
    loaded = load_quantized(tmp_path / "q", torch.float32)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, in_memory(ids).logits)


def test_checkpoint_config_and_names_are_those_the_builder_reads(tiny_llama, tmp_path):
    import json

    from safetensors import safe_open

    quantize_tiny(tiny_llama, tmp_path / "q", "gptq", sym=True, desc_act=True, modules_to_not_convert=[])
    config = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert {k: config[k] for k in ("quant_method", "bits", "group_size", "sym", "desc_act", "static_groups", "lm_head")} == {
        "quant_method": "gptq", "bits": 4, "group_size": 32, "sym": True, "desc_act": False, "static_groups": True,
        "lm_head": True}
    assert config["meta"]["algorithm"] == "gptq" and config["meta"]["desc_act"] is True
    with safe_open(tmp_path / "q" / "model.safetensors", "pt") as weights:
        names = set(weights.keys())
    assert {"model.layers.0.self_attn.q_proj.qweight", "model.layers.0.self_attn.q_proj.qzeros",
            "model.layers.0.self_attn.q_proj.scales", "model.layers.0.self_attn.q_proj.g_idx",
            "lm_head.qweight", "model.embed_tokens.weight", "model.norm.weight"} <= names
    assert not any(name.endswith("proj.weight") for name in names)
    loaded = load_quantized(tmp_path / "q", torch.float32)
    assert isinstance(loaded.lm_head, QuantLinear)


def test_quant_linear_keeps_its_float16_scales_through_dtype_casts(tiny_llama, tmp_path):
    quantize_tiny(tiny_llama, tmp_path / "q", "rtn")
    model = load_quantized(tmp_path / "q", torch.float32).to(torch.bfloat16)
    linear = model.model.layers[0].self_attn.q_proj
    assert linear.scales.dtype == torch.float16 and linear.qweight.dtype == torch.int32
    assert model.model.norm.weight.dtype == torch.bfloat16
    assert model(torch.tensor([[5, 6, 7]])).logits.dtype == torch.bfloat16


def test_quant_linear_backward_matches_autograd_through_the_dequantized_weight():
    weight = random_weight(16, 32, 4, 16)
    bias = torch.randn(16)
    linear = QuantLinear.from_weight(weight, "awq", bias)
    linear.bias.requires_grad_(True)
    x = torch.randn(3, 5, 32, requires_grad=True)
    (linear(x) ** 2).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    bias_ref = bias.clone().requires_grad_(True)
    (nn.functional.linear(x_ref, weight.dequantize(), bias_ref) ** 2).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(linear.bias.grad, bias_ref.grad, atol=1e-4)


def test_lora_trains_on_a_loaded_quantized_model(tiny_llama, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    quantize_tiny(tiny_llama, tmp_path / "q", "gptq")
    model = get_peft_model(load_quantized(tmp_path / "q", torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    wrapped = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(wrapped.base_layer, QuantLinear)
    ids = torch.randint(3, 300, (4, 16), generator=torch.Generator().manual_seed(2))
    buffers_before = {name: b.clone() for name, b in model.named_buffers()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    assert len(with_grad) == 2 * 3 * 2  # A and B, three targets, two layers
    assert all(p.grad is None for name, p in model.named_parameters() if "lora_" not in name)
    optimizer.step()
    with torch.no_grad():
        assert model(input_ids=ids, labels=ids).loss < loss
    assert all(torch.equal(b, buffers_before[name]) for name, b in model.named_buffers())

    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(load_quantized(tmp_path / "q", torch.float32), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)
