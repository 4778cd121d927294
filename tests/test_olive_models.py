"""Olive's model types: PyTorchModel (model_loader in model_script, or a whole module in a .pt file) with its
io_config, exported by OnnxConversion; and the io_config / model_class of an HfModel."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pass_runner import pass_context
from pydantic import ValidationError

from olivepress.config.sections import HfModelConfig, PyTorchModelConfig
from olivepress.engine.keys import model_key
from olivepress.errors import OlivepressError
from olivepress.hashing import FingerprintMemo
from olivepress.models.handles import HfModel, PyTorchModel
from olivepress.models.resolve import pytorch_model, resolve_input_model
from olivepress.passes.onnx.conversion import OnnxConversion, OnnxConversionConfig

SCRIPT = """
import torch


class Scale(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((4,), float(factor)))

    def forward(self, features):
        return features * self.weight


def load_scale(model_path):
    return Scale(3 if model_path is None else len(model_path))


def io_config(model):
    return {"input_names": ["features"], "input_shapes": [[2, 4]], "input_types": ["float32"],
            "output_names": ["scaled"], "dynamic_axes": {"features": {"0": "batch"}}}
"""


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "user_script.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


@pytest.mark.parametrize("config, problem", [
    ({"type": "PyTorchModel"}, "give model_loader (with model_script) or model_path (a .pt file)"),
    ({"type": "PyTorchModel", "model_loader": "load"}, "model_loader names a function: give model_script"),
    ({"type": "PyTorchModel", "model_path": "m.pt", "io_config": "io"}, "io_config names a function: give model_script"),
])
def test_pytorch_model_mistakes_are_named(config, problem):
    with pytest.raises(ValidationError, match=re.escape(problem)):
        PyTorchModelConfig.model_validate(config)


def test_a_loader_is_given_a_hub_id_as_it_is_and_a_missing_script_is_named(script, tmp_path):
    model = pytorch_model(PyTorchModelConfig(type="PyTorchModel", model_path="org/name", model_loader="load_scale",
                                             model_script=str(script)))
    assert (model.path, model.model_id, model.model_script) == (None, "org/name", script.resolve())
    with pytest.raises(OlivepressError, match="^input_model.model_script: user script nope.py not found$"):
        pytorch_model(PyTorchModelConfig(type="PyTorchModel", model_loader="load_scale", model_script="nope.py"))


def test_the_model_key_follows_the_script_content_not_its_path(script, tmp_path):
    memo = FingerprintMemo(tmp_path / "memo.db")
    copy = tmp_path / "elsewhere" / "user_script.py"
    copy.parent.mkdir()
    copy.write_text(SCRIPT, encoding="utf-8")
    keys = [model_key(PyTorchModel(model_script=path, model_loader="load_scale"), memo) for path in (script, copy)]
    assert keys[0] == keys[1]
    copy.write_text(SCRIPT.replace("3 if", "5 if"), encoding="utf-8")
    assert model_key(PyTorchModel(model_script=copy, model_loader="load_scale"), memo) != keys[0]


def _run_graph(folder: Path, features: np.ndarray) -> tuple[list[str], list[str], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()], [value.name for value in session.get_outputs()]
    return names[0], names[1], session.run(None, {"features": features})[0]


@pytest.mark.slow
def test_onnx_conversion_exports_a_loader_model_with_its_io_config_function(script, tmp_path):
    model = PyTorchModel(model_script=script, model_loader="load_scale", io_config="io_config")
    OnnxConversion().run(model, OnnxConversionConfig(), pass_context(tmp_path))
    features = np.arange(12, dtype=np.float32).reshape(3, 4)  # batch 3: the batch axis is dynamic
    inputs, outputs, scaled = _run_graph(tmp_path / "out", features)
    assert (inputs, outputs) == (["features"], ["scaled"])
    np.testing.assert_allclose(scaled, features * 3)


@pytest.mark.slow
def test_onnx_conversion_exports_a_whole_module_saved_in_a_pt_file(script, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(script.parent))
    scale = __import__("user_script").Scale(2)
    torch.save(scale, tmp_path / "scale.pt")
    config = PyTorchModelConfig(type="PyTorchModel", model_path=str(tmp_path / "scale.pt"), io_config={
        "input_names": ["features"], "input_shapes": [[1, 4]], "input_types": ["float32"], "output_names": ["scaled"]})
    model = resolve_input_model(config)
    OnnxConversion().run(model, OnnxConversionConfig(), pass_context(tmp_path))
    _, _, scaled = _run_graph(tmp_path / "out", np.ones((1, 4), dtype=np.float32))
    np.testing.assert_allclose(scaled, np.full((1, 4), 2.0))


@pytest.mark.slow
def test_an_hf_models_io_config_shapes_its_export(tiny_llama, tmp_path):
    axes = {"0": "rows", "1": "tokens"}
    config = HfModelConfig(type="HfModel", model_path=str(tiny_llama), model_class="LlamaForCausalLM", io_config={
        "input_names": ["input_ids", "attention_mask"], "output_names": ["logits"],
        "dynamic_axes": {"input_ids": axes, "attention_mask": axes, "logits": axes}})
    model = resolve_input_model(config)
    assert isinstance(model, HfModel) and model.model_class == "LlamaForCausalLM"
    OnnxConversion().run(model, OnnxConversionConfig(), pass_context(tmp_path))
    import onnx

    graph = onnx.load(str(tmp_path / "out" / "model.onnx"), load_external_data=False).graph
    assert [value.name for value in graph.input] == ["input_ids", "attention_mask"]
    assert [dim.dim_param for dim in graph.input[0].type.tensor_type.shape.dim] == ["rows", "tokens"]


@pytest.mark.slow
def test_kv_cache_io_config_exports_past_key_values_of_a_causal_lm(tiny_llama, tmp_path):
    """Olive 0.6's llama2 io_config: kv_cache true, a mask 32 tokens longer than the ids in the example."""
    import onnxruntime as ort
    from transformers import AutoModelForCausalLM, DynamicCache

    axes = {"input_ids": {"0": "batch_size", "1": "sequence_length"},
            "attention_mask": {"0": "batch_size", "1": "total_sequence_length"},
            "position_ids": {"0": "batch_size", "1": "sequence_length"}}
    model = HfModel(tiny_llama, io_config={
        "input_names": ["input_ids", "attention_mask", "position_ids"], "output_names": ["logits"],
        "input_shapes": [[2, 8], [2, 40], [2, 8]], "input_types": ["int32", "int32", "int32"], "dynamic_axes": axes,
        "kv_cache": True})
    OnnxConversion().run(model, OnnxConversionConfig(), pass_context(tmp_path))
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]
    assert names[3:] == [f"past_key_values.{n}.{kind}" for n in range(2) for kind in ("key", "value")]
    assert [value.name for value in session.get_outputs()][1:3] == ["present.0.key", "present.0.value"]
    torch_model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(0)
    for past, length in ((0, 5), (6, 1)):  # prompt processing, then token generation
        ids = torch.randint(3, 300, (2, length), generator=generator)
        kv = [torch.randn(2, 2, past, 16, generator=generator) for _ in range(4)]  # 2 KV heads of 16
        mask, positions = torch.ones(2, past + length, dtype=torch.int64), torch.arange(past, past + length).expand(2, -1)
        feeds = {"input_ids": ids.int().numpy(), "attention_mask": mask.int().numpy(),
                 "position_ids": positions.int().numpy(), **{name: t.numpy() for name, t in zip(names[3:], kv, strict=True)}}
        logits, present_key = session.run(["logits", "present.0.key"], feeds)
        with torch.no_grad():
            cache = DynamicCache(ddp_cache_data=[(kv[0], kv[1]), (kv[2], kv[3])], config=torch_model.config)
            expected = torch_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                   past_key_values=cache).logits
        assert present_key.shape == (2, 2, past + length, 16)
        np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)


def test_kv_cache_io_config_is_refused_at_export(script, tmp_path):
    model = PyTorchModel(model_script=script, model_loader="load_scale", io_config={
        "input_names": ["features"], "input_shapes": [[2, 4]], "input_types": ["float32"],
        "output_names": ["scaled"], "kv_cache": True})
    with pytest.raises(OlivepressError, match="^io_config.kv_cache: OnnxConversion does not add past key/value inputs"):
        OnnxConversion().run(model, OnnxConversionConfig(), pass_context(tmp_path))


def test_an_unknown_model_class_is_named():
    with pytest.raises(ValidationError, match="transformers has no class 'LlamaForCasualLM'"):
        HfModelConfig(type="HfModel", model_path="x", model_class="LlamaForCasualLM")
