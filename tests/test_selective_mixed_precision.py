"""SelectiveMixedPrecision: Olive's algorithms choose the linears kept at high_bits; the choice travels in config.json
(mixed_precision_info) and the following RTN/GPTQ pass quantizes those linears at high_bits."""

import json
import logging
import math

import pytest
import torch
from pydantic import ValidationError
from torch.nn import functional as F

from olivepress.passes.pytorch.selective_mixed_precision import Algorithm, SelectiveMixedPrecisionConfig
from olivepress.quantization.checkpoint import load_quantized
from olivepress.quantization.mixed_precision import choose_mixed_precision
from olivepress.quantization.options import HEURISTIC_ALGORITHMS, SCORED_ALGORITHMS
from olivepress.quantization.rtn import fake_quantize

logger = logging.getLogger("olivepress.test")
pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = torch.randint(3, 300, (4, 16), generator=torch.Generator().manual_seed(0))
HIGH = {"bits": 8, "group_size": 32, "symmetric": False}


def float_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def units_of(model):
    """Each linear alone, except the q/k/v projections of a layer together."""
    units = []
    for index in range(len(model.model.layers)):
        prefix = f"model.layers.{index}"
        units.append(tuple(f"{prefix}.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj")))
        units += [(f"{prefix}.self_attn.o_proj",)] + [(f"{prefix}.mlp.{n}",) for n in ("gate_proj", "up_proj", "down_proj")]
    return units + [("lm_head",)]


def kld_scores(model, units, rows):
    """Olive's kld_gradient score, computed here with torch.func: one functional call over all low-bit weights."""
    from torch.func import functional_call

    names = [name for unit in units for name in unit]
    source = {name: model.get_submodule(name).weight.detach() for name in names}
    low = {name: fake_quantize(weight, 4, 32, False).requires_grad_(True) for name, weight in source.items()}
    total = {name: torch.zeros_like(weight) for name, weight in source.items()}
    for row in rows:
        with torch.no_grad():
            teacher = F.softmax(model(row[None]).logits, -1)
        student = functional_call(model, {f"{n}.weight": w for n, w in low.items()}, (row[None],)).logits
        loss = F.kl_div(F.log_softmax(student, -1), teacher, reduction="none").sum(-1).mean()
        for name, grad in zip(names, torch.autograd.grad(loss, list(low.values())), strict=True):
            total[name] += grad
    alignment = {name: float((total[name] / len(rows) * (low[name].detach() - fake_quantize(source[name], 8, 32, False))).sum())
                 for name in names}
    return {unit: -sum(alignment[n] for n in unit) / (sum(source[n].numel() for n in unit) / 1e6) for unit in units}


def expected_choice(units, numels, scores, ratio):
    chosen, total = [], 0
    for unit in sorted(units, key=scores.__getitem__):
        chosen += unit
        total += numels[unit]
        if total >= (1 - ratio) * sum(numels.values()):
            return chosen
    return chosen


def test_the_algorithm_names_are_olives():
    assert Algorithm.__args__ == HEURISTIC_ALGORITHMS + SCORED_ALGORITHMS  # type: ignore[attr-defined]
    assert SelectiveMixedPrecisionConfig(algorithm="k_quant_mixed").algorithm == "high_precision_mlp_down_qkv"


@pytest.mark.parametrize("entry,message", [
    ({"algorithm": "kld_gradient"}, "algorithm kld_gradient needs ratio"),
    ({"algorithm": "snr", "ratio": 1.0}, "ratio\n  Input should be less than 1"),
    ({"algorithm": "snr", "ratio": 0.5, "high_bits": 16}, "16 bits cannot be written: RTN and GPTQ write gptq"),
    ({"algorithm": "snr", "ratio": 0.5, "bits": 8}, "high_bits 8 must be more than bits 8"),
])
def test_bad_settings_are_refused(entry, message):
    with pytest.raises(ValidationError, match=message):
        SelectiveMixedPrecisionConfig(**entry)


def test_the_heuristic_promotes_the_lm_head_and_the_first_layers_down_and_qkv(tiny_llama):
    options = SelectiveMixedPrecisionConfig(algorithm="high_precision_mlp_down_qkv").options()
    info = choose_mixed_precision(float_model(tiny_llama), options, None, logger)
    # 2 layers: layer 0 is in the first eighth, layer 1 neither in the last eighth nor on the every-third step
    assert info == {"default": {"bits": 4}, "overrides": {name: {"bits": 8} for name in (
        "lm_head", "model.layers.0.mlp.down_proj", "model.layers.0.self_attn.k_proj",
        "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj")}}


@pytest.mark.parametrize("algorithm", ["snr", "iqe"])
def test_weight_scores_promote_the_least_quantizable_units(algorithm, tiny_llama):
    model = float_model(tiny_llama)
    with torch.no_grad():  # a weight with outliers quantizes worst: it must be chosen first
        model.model.layers[1].mlp.up_proj.weight[:, ::7] *= 30
    options = SelectiveMixedPrecisionConfig(algorithm=algorithm, ratio=0.95, group_size=32).options()
    info = choose_mixed_precision(model, options, None, logger)
    assert info["default"] == {"bits": 4, "group_size": 32, "symmetric": False}
    assert info["overrides"] == {"model.layers.1.mlp.up_proj": HIGH}


@pytest.mark.slow
def test_kld_gradient_chooses_the_units_its_score_ranks_most_sensitive(tiny_llama):
    model = float_model(tiny_llama)
    units = units_of(model)
    scores = kld_scores(model, units, ROWS)
    numels = {unit: sum(model.get_submodule(n).weight.numel() for n in unit) for unit in units}
    options = SelectiveMixedPrecisionConfig(algorithm="kld_gradient", ratio=0.65, group_size=32).options()
    info = choose_mixed_precision(model, options, ROWS, logger)
    expected = expected_choice(units, numels, scores, 0.65)
    assert sorted(info["overrides"]) == sorted(expected) and info["overrides"]["lm_head"] == HIGH
    high = sum(model.get_submodule(n).weight.numel() for n in expected)
    assert high >= 0.35 * sum(numels.values()) and not math.isclose(high, sum(numels.values()))


@pytest.mark.slow
def test_the_choice_travels_to_the_next_rtn_pass(tiny_llama, tmp_path, write_doc, cli):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"s": {"type": "SelectiveMixedPrecision", "algorithm": "kld_gradient", "bits": 4, "high_bits": 8,
                         "ratio": 0.65, "sym": False, "group_size": 32, "num_samples": 4, "seq_len": 16},
                   "r": {"type": "rtn", "bits": 4, "sym": False, "group_size": 32, "lm_head": True}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    out = tmp_path / "out" / "model"
    info = json.loads((out / "config.json").read_text())["mixed_precision_info"]
    loaded = load_quantized(out, torch.float32)
    bits = {name: module.bits for name, module in loaded.named_modules() if hasattr(module, "bits")}
    assert info["overrides"] and {name: 8 for name in info["overrides"]} == {n: b for n, b in bits.items() if b == 8}
    assert set(bits.values()) == {4, 8}


def test_a_tied_embedding_follows_the_lm_head():
    from transformers import AutoModelForCausalLM, LlamaConfig

    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        tie_word_embeddings=True))
    options = SelectiveMixedPrecisionConfig(algorithm="k_quant_last").options()
    assert choose_mixed_precision(model, options, None, logger) == {
        "default": {"bits": 4}, "overrides": {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}}
