"""Feeds of an ONNX graph for calibration and session tuning: a user's dataloader (Olive 0.2-0.6's dataloader_func)
served as it is, and OrtSessionParamsTuning without data (ones shaped as the graph's inputs, as Olive does)."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_runner import run_pass

from olivepress.config.migration import migrate
from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.onnx.calibration import graph_feeds, input_types
from olivepress.passes.onnx.session_tuning import OrtSessionParamsTuning

# Olive's squeezenet example reads images through a dataloader_func of its user script; three batches here.
SQUEEZENET_SCRIPT = """
import torch

CALLS = []


def create_dataloader(data_dir, batch_size, *args, **kwargs):
    CALLS.append((data_dir, batch_size, kwargs))
    return [(torch.full((batch_size, 3, 16, 16), float(n)), torch.tensor([n])) for n in range(3)]
"""


def _cnn(folder, size: int | str = 16) -> OnnxModel:
    """A squeezenet-like graph: Conv, Relu, global average pool, Flatten; input 'data' of [1, 3, size, size]."""
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("squeezenet0_flatten0_reshape0", TensorProto.FLOAT, [1, 8])
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["data", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["squeezenet0_flatten0_reshape0"])]
    folder.mkdir(parents=True)
    graph = helper.make_graph(nodes, "squeezenet", [data], [out], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    return OnnxModel(path=folder)


def _dataloader_func_data(tmp_path, monkeypatch) -> DataConfig:
    """The data config that Olive 0.6's OrtPerfTuning with a dataloader_func becomes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_script.py").write_text(SQUEEZENET_SCRIPT, encoding="utf-8")
    migrated = migrate({"passes": {"perf_tuning": {"type": "OrtPerfTuning", "config": {
        "user_script": "user_script.py", "dataloader_func": "create_dataloader", "batch_size": 1, "data_dir": "data"}}}})
    return DataConfig.model_validate(migrated.document["data_configs"][0])


def _calls(tmp_path) -> list:
    from olivepress.user_code import load_script

    return load_script(str(tmp_path / "user_script.py")).module.CALLS


def test_graph_feeds_serve_a_user_dataloaders_batches_as_they_are(tmp_path, monkeypatch):
    data = _dataloader_func_data(tmp_path, monkeypatch)
    model = _cnn(tmp_path / "model")  # a folder without a tokenizer: the user's batches need none
    feeds = graph_feeds(model, data, input_types(onnx.load(str(model.path / "model.onnx")).graph))
    assert [sorted(feed) for feed in feeds] == [["data"]] * 3
    assert [float(feed["data"][0, 0, 0, 0]) for feed in feeds] == [0.0, 1.0, 2.0]
    assert all(feed["data"].dtype == np.float32 and feed["data"].shape == (1, 3, 16, 16) for feed in feeds)
    assert _calls(tmp_path)[-1] == ("data", 1, {})  # Olive's call: func(data_dir, batch_size)


def test_session_params_tuning_times_a_user_dataloaders_batches(tmp_path, monkeypatch):
    data = _dataloader_func_data(tmp_path, monkeypatch)
    tuned, metrics = run_pass(OrtSessionParamsTuning, _cnn(tmp_path / "model"), tmp_path / "run", data,
                              data_config=data.name, opt_level_list=[0, 99], warmup_num=0, test_num=3)
    assert metrics["candidates"] == 2 and metrics["latency_ms"] > 0
    settings = json.loads((tuned.path / "inference_settings.json").read_text(encoding="utf-8"))
    assert settings["providers"] == ["CPUExecutionProvider"] and settings["latency_ms"] == metrics["latency_ms"]
    assert _calls(tmp_path)[-1] == ("data", 1, {})


def test_session_params_tuning_without_data_times_ones_shaped_as_the_graphs_inputs(tmp_path, monkeypatch):
    import onnxruntime

    timed = []
    real_run = onnxruntime.InferenceSession.run

    def recording_run(session, outputs, feed, *args, **kwargs):
        timed.append({name: (value.shape, value.dtype, float(value.min()), float(value.max()))
                      for name, value in feed.items()})
        return real_run(session, outputs, feed, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", recording_run)
    tuned, metrics = run_pass(OrtSessionParamsTuning, _cnn(tmp_path / "model"), tmp_path / "run",
                              warmup_num=0, test_num=2)
    assert OrtSessionParamsTuning.Config.model_validate({}).data_config is None
    assert metrics["candidates"] == 1 and metrics["latency_ms"] > 0
    assert timed and all(feed == {"data": ((1, 3, 16, 16), np.float32, 1.0, 1.0)} for feed in timed)
    assert (tuned.path / "inference_settings.json").is_file()


def test_session_params_tuning_without_data_needs_fixed_input_shapes(tmp_path):
    with pytest.raises(OlivepressError, match="^data_config: none is given, and graph input data has no fixed shape"):
        run_pass(OrtSessionParamsTuning, _cnn(tmp_path / "model", size="side"), tmp_path / "run", test_num=1)
