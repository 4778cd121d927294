"""Quantizing with the decoder layers read from the safetensors files one at a time: the same bytes as quantizing
the model loaded whole, with less float weight in memory at any time."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from olivepress.models.loading import DeferredLayers, load_causal_lm, load_causal_lm_by_layer
from olivepress.passes.pytorch.quantize import AWQConfig, GPTQConfig, RTNConfig
from olivepress.quantization.algorithms import plan, quantize_model

logger = logging.getLogger("olivepress.test")
pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = torch.randint(3, 300, (8, 32), generator=torch.Generator().manual_seed(0))


def float_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if not p.is_meta and p.is_floating_point())


def test_only_the_decoder_layers_wait_on_disk_and_load_to_the_same_tensors(tiny_llama):
    model, deferred = load_causal_lm_by_layer(tiny_llama, "float32")
    whole = load_causal_lm(tiny_llama, "float32")

    assert isinstance(deferred, DeferredLayers)
    meta = {name for name, p in model.named_parameters() if p.is_meta}
    assert meta == {name for name, _ in whole.named_parameters() if name.startswith("model.layers.")}
    for index, layer in enumerate(model.model.layers):
        deferred.load(layer, f"model.layers.{index}.")
    expected = whole.state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in model.state_dict().items())
    ids = ROWS[:2]
    assert torch.equal(model(ids).logits, whole.eval()(ids).logits)


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    from tiny_architectures import write_tiny_architecture

    return write_tiny_architecture(tmp_path_factory.mktemp("gemma3"), "gemma3_text")


@pytest.mark.parametrize(("architecture", "config"), [
    ("llama", AWQConfig(group_size=32)), ("llama", GPTQConfig(group_size=32)), ("llama", RTNConfig(group_size=32)),
    ("gemma3", AWQConfig(group_size=16))], ids=["llama-awq", "llama-gptq", "llama-rtn", "gemma3-awq"])
def test_layer_by_layer_loading_quantizes_to_the_same_bytes_with_less_float_weight_held(architecture, config, request):
    tiny_llama = request.getfixturevalue(f"tiny_{architecture}")
    options = config.options()
    whole = load_causal_lm(tiny_llama, "float32").eval()
    quant_plan, group_size = plan(whole, options, logger)
    quantize_model(whole, options, quant_plan, group_size, ROWS, torch.device("cpu"))

    model, deferred = load_causal_lm_by_layer(tiny_llama, "float32")
    assert deferred is not None
    held = []
    load = deferred.load

    def load_and_measure(module, prefix):
        load(module, prefix)
        held.append(float_bytes(model))

    deferred.load = load_and_measure  # type: ignore[method-assign]
    quant_plan, group_size = plan(model, options, logger)
    quantize_model(model, options, quant_plan, group_size, ROWS, torch.device("cpu"), deferred)

    expected = whole.state_dict()
    assert model.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in model.state_dict().items())
    float_model = float_bytes(whole_float := load_causal_lm(tiny_llama, "float32"))
    one_layer = float_bytes(whole_float.model.layers[0])
    # when the second layer is read, the first is already quantized: at most one float layer is held
    assert len(held) == 2 and max(held) < float_model - 0.9 * one_layer


def test_a_folder_without_safetensors_weights_loads_whole(tiny_llama, tmp_path):
    whole = load_causal_lm(tiny_llama, "float32")
    (tmp_path / "config.json").write_text((tiny_llama / "config.json").read_text())
    torch.save(whole.state_dict(), tmp_path / "pytorch_model.bin")
    model, deferred = load_causal_lm_by_layer(tmp_path, "float32")
    assert deferred is None and not any(p.is_meta for p in model.parameters())


def test_a_checkpoint_whose_names_differ_from_the_models_loads_whole(tiny_llama, tmp_path):
    whole = load_causal_lm(tiny_llama, "float32")
    (tmp_path / "config.json").write_text((tiny_llama / "config.json").read_text())
    renamed = {name.replace("model.layers.1.", "model.layers.1.old_"): t for name, t in whole.state_dict().items()}
    save_file(renamed, str(tmp_path / "model.safetensors"))
    model, deferred = load_causal_lm_by_layer(tmp_path, "float32")
    assert deferred is None
