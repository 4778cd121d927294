"""AddOliveMetadata, DynamicToFixedShape, OnnxPeepholeOptimizer and OrtSessionParamsTuning on a tiny BERT export."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pass_runner import run_pass
from tiny_models import CORPUS, write_tokenizer

from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.hashing import digest, sha256_file
from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.onnx.conversion import OnnxConversion
from olivepress.passes.onnx.fixed_shape import DynamicToFixedShape
from olivepress.passes.onnx.metadata import AddOliveMetadata
from olivepress.passes.onnx.peephole import OnnxPeepholeOptimizer
from olivepress.passes.onnx.session_tuning import OrtSessionParamsTuning

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def bert_onnx(tmp_path_factory) -> OnnxModel:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("models") / "tiny-bert"
    vocab = write_tokenizer(folder)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=128, max_position_embeddings=128)).save_pretrained(folder)
    return run_pass(OnnxConversion, HfModel(folder, task="text-classification"), tmp_path_factory.mktemp("onnx"))[0]


def feed(batch: int, sequence: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(batch + sequence).integers(3, 300, (batch, sequence))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def session(model: OnnxModel) -> ort.InferenceSession:
    return ort.InferenceSession(str(model.path / model.onnx_file_name), providers=["CPUExecutionProvider"])


def test_add_olive_metadata(bert_onnx, tmp_path):
    source = OnnxModel(Path(shutil.copytree(bert_onnx.path, tmp_path / "source")))
    hf_config = json.loads((source.path / "config.json").read_text())
    (source.path / "config.json").write_text(json.dumps({**hf_config, "_name_or_path": "google/tiny-bert"}))
    files = ["model.onnx", "model.onnx.data"]
    expected_hash = digest({name: sha256_file(bert_onnx.path / name) for name in files})
    tagged, _ = run_pass(AddOliveMetadata, source, tmp_path, graph_name="bert-mrpc",
                         custom_metadata={"owner": "lab", "epochs": 3})
    proto = onnx.load(str(tagged.path / "model.onnx"), load_external_data=False)
    entries = {entry.key: entry.value for entry in proto.metadata_props}
    assert proto.graph.name == "bert-mrpc"
    assert entries["owner"] == "lab" and entries["epochs"] == "3" and entries["model_hash"] == expected_hash
    assert entries["olivepress_version"] and entries["hf_model_name"] == "google/tiny-bert"
    assert (tagged.path / "model.onnx.data").read_bytes() == (bert_onnx.path / "model.onnx.data").read_bytes()
    assert (tagged.path / "tokenizer.json").is_file()
    assert np.array_equal(session(tagged).run(None, feed(2, 5))[0], session(bert_onnx).run(None, feed(2, 5))[0])


def test_dynamic_to_fixed_shape(bert_onnx, tmp_path):
    fixed, _ = run_pass(DynamicToFixedShape, bert_onnx, tmp_path / "params", dim_param=["batch", "sequence"],
                        dim_value=[1, 16])
    assert [i.shape for i in session(fixed).get_inputs()] == [[1, 16]] * 3
    assert session(fixed).get_outputs()[0].shape == [1, 2]
    assert np.abs(session(fixed).run(None, feed(1, 16))[0] - session(bert_onnx).run(None, feed(1, 16))[0]).max() < 1e-5
    with pytest.raises(Exception, match="input_ids"):  # a fixed shape is enforced
        session(fixed).run(None, feed(1, 8))
    by_input, _ = run_pass(DynamicToFixedShape, bert_onnx, tmp_path / "inputs", input_name=["input_ids"],
                           input_shape=[[2, 8]])
    assert session(by_input).get_inputs()[0].shape == [2, 8]
    with pytest.raises(OlivepressError, match="dim_param: 'batch_size' is no symbolic dimension of the graph's inputs "
                                              r"\(did you mean 'batch'\?\); they have batch, sequence"):
        run_pass(DynamicToFixedShape, bert_onnx, tmp_path / "bad", dim_param=["batch_size"], dim_value=[1])
    with pytest.raises(ValueError, match="dim_param and dim_value go together, one value for each name"):
        DynamicToFixedShape.Config.model_validate({"dim_param": ["batch"], "dim_value": [1, 2]})


def test_peephole_optimizer(bert_onnx, tmp_path):
    optimized, metrics = run_pass(OnnxPeepholeOptimizer, bert_onnx, tmp_path, save_as_external_data=True)
    assert metrics["nodes_after"] == len(onnx.load(str(optimized.path / "model.onnx")).graph.node)
    assert metrics["nodes_after"] < 0.8 * metrics["nodes_before"]  # constants folded, shape arithmetic gone
    for batch, sequence in [(1, 5), (3, 11)]:
        expected = session(bert_onnx).run(None, feed(batch, sequence))[0]
        assert np.abs(session(optimized).run(None, feed(batch, sequence))[0] - expected).max() < 1e-5


def test_session_params_tuning_records_the_fastest(bert_onnx, tmp_path, caplog):
    data_file = tmp_path / "texts.jsonl"
    data_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in sorted(set(CORPUS))))
    data = DataConfig.model_validate({"name": "latency", "load_dataset_config": {"data_name": "json",
                                                                                  "data_files": str(data_file)},
                                      "pre_process_data_config": {"corpus_strategy": "line-by-line", "max_seq_len": 16},
                                      "dataloader_config": {"batch_size": 2}})
    with caplog.at_level(logging.WARNING):
        tuned, metrics = run_pass(OrtSessionParamsTuning, bert_onnx, tmp_path, data, data_config="latency",
                                  opt_level_list=[0, 99], execution_mode_list=["ORT_SEQUENTIAL"],
                                  intra_thread_num_list=[1, 2], io_bind=True, enable_cuda_graph=True,
                                  providers_list=["CPUExecutionProvider", "CUDAExecutionProvider"], test_num=3)
    assert metrics["candidates"] == 4  # 2 levels x 2 thread counts, on the CPU provider only
    settings = json.loads((tuned.path / "inference_settings.json").read_text())
    assert settings["providers"] == ["CPUExecutionProvider"] and settings["io_bind"] is True
    assert settings["session_options"]["graph_optimization_level"] in ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL")
    assert settings["session_options"]["intra_op_num_threads"] in (1, 2)
    assert settings["latency_ms"] == metrics["latency_ms"] > 0 and metrics["default_latency_ms"] > 0
    assert (tuned.path / "model.onnx.data").read_bytes() == (bert_onnx.path / "model.onnx.data").read_bytes()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("OrtSessionParamsTuning: skipping CUDAExecutionProvider") for m in messages)
    assert "OrtSessionParamsTuning: enable_cuda_graph applies to CUDAExecutionProvider, which is not tried here" in messages
