"""OnnxStaticQuantization and OnnxQuantization on a tiny random BERT classifier: calibrated on a data config,
int8/int16, QDQ and QOperator, MinMax/Entropy/Percentile, outputs within a stated tolerance of float on held-out text."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pass_runner import run_pass
from tiny_models import CORPUS, write_tokenizer

from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.onnx.conversion import OnnxConversion
from olivepress.passes.onnx.static_quantization import (
    OnnxQuantization,
    OnnxQuantizationConfig,
    OnnxStaticQuantization,
    OnnxStaticQuantizationConfig,
)

pytestmark = pytest.mark.slow

CALIBRATION = sorted(set(CORPUS)) + [
    "Where can I find a quiet beach near Lisbon?", "The storm knocked the power out for a day. The tone is fear.",
    "Pack light layers; evenings in the mountains get cold.", "We finally adopted a puppy! The tone is joy.",
    "How long is the ferry from Athens to Naxos?", "The soup was cold and the waiter ignored us.",
    "Book museum tickets online to skip the queue.", "My flight got cancelled twice today.",
    "Street food in Bangkok is cheap and wonderful.", "Is it safe to hike alone in winter?",
    "The concert sold out in minutes. The tone is surprise.", "Bring cash: small shops rarely take cards.",
]
HELD_OUT = ["The museum opens at nine and closes late on Fridays.", "Rain all week, so we stayed in and read.",
            "Trains to the coast leave every hour.", "I cannot believe we won the final!"]



@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("models") / "tiny-bert"
    vocab = write_tokenizer(folder)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=128,
                                                     max_position_embeddings=128, num_labels=3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.1)  # larger than the default init, so logits differ clearly between inputs
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_onnx(bert_folder, tmp_path_factory) -> OnnxModel:
    return run_pass(OnnxConversion, HfModel(bert_folder, task="text-classification"), tmp_path_factory.mktemp("onnx"))[0]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> DataConfig:
    file = tmp_path_factory.mktemp("data") / "calibration.jsonl"
    file.write_text("".join(json.dumps({"text": text}) + "\n" for text in CALIBRATION))
    return DataConfig.model_validate({
        "name": "calib", "load_dataset_config": {"data_name": "json", "data_files": str(file)},
        "pre_process_data_config": {"corpus_strategy": "line-by-line", "max_seq_len": 24},
        "dataloader_config": {"batch_size": 2}})


def held_out_feed(model: OnnxModel) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(model.path)(HELD_OUT, padding=True, return_tensors="np")
    ids = tokens["input_ids"].astype(np.int64)
    return {"input_ids": ids, "attention_mask": tokens["attention_mask"].astype(np.int64), "token_type_ids": 0 * ids}


def logits(model: OnnxModel, feed) -> np.ndarray:
    session = ort.InferenceSession(str(model.path / model.onnx_file_name), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feed.items() if k in names})[0]


def ops(model: OnnxModel) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(model.path / model.onnx_file_name), load_external_data=False).graph.node)


def relative_error(model: OnnxModel, reference: OnnxModel) -> float:
    feed = held_out_feed(reference)
    expected = logits(reference, feed)
    return float(np.abs(logits(model, feed) - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize(("config", "tolerance"), [  # relative to the largest float logit (about 1.3)
    ({}, 0.06),  # QDQ int8, MinMax: measured 0.023
    ({"calibrate_method": "Entropy", "per_channel": True}, 0.1),  # measured 0.049
    ({"calibrate_method": "Percentile"}, 0.06),  # measured 0.023
    ({"quant_format": "QOperator", "precision": "uint8", "activation_type": "uint8"}, 0.06),  # measured 0.022
    ({"activation_type": "QUInt16", "weight_type": "QInt8"}, 0.04),  # Olive 0.6's spelling; measured 0.015
    ({"precision": "int16", "activation_type": "int16"}, 0.02),  # measured 0.008: held-out values past the calibrated range clip
])
def test_static_quantization_stays_close_to_float(config, tolerance, bert_onnx, calibration, tmp_path):
    quantized, metrics = run_pass(OnnxStaticQuantization, bert_onnx, tmp_path, calibration,
                                  data_config="calib", **config)
    error = relative_error(quantized, bert_onnx)
    print(config, "relative error", round(error, 4))
    assert error < tolerance
    assert metrics["calibration_batches"] == 8  # 16 texts, batches of 2
    counts = ops(quantized)
    if config.get("quant_format") == "QOperator":
        assert counts["QLinearMatMul"] + counts["MatMulInteger"] >= 12 and metrics["quantized_ops"] >= 12
    else:
        assert counts["DequantizeLinear"] >= 12 and metrics["qdq_nodes"] == counts["QuantizeLinear"] + counts["DequantizeLinear"]
    assert (quantized.path / "tokenizer.json").is_file()


def test_nodes_and_op_types_to_exclude(bert_onnx, calibration, tmp_path):
    graph = onnx.load(str(bert_onnx.path / "model.onnx"), load_external_data=False).graph
    matmuls = [node.name for node in graph.node if node.op_type == "MatMul"]
    quantized, _ = run_pass(OnnxStaticQuantization, bert_onnx, tmp_path / "nodes", calibration, data_config="calib",
                            quant_preprocess=False, nodes_to_exclude=matmuls[:1])
    quantized_graph = onnx.load(str(quantized.path / "model.onnx")).graph
    weights = {t.name: t.data_type for t in quantized_graph.initializer}
    weight_of = {node.name: node.input[1] for node in quantized_graph.node if node.op_type == "MatMul"}
    assert weights[weight_of[matmuls[0]]] == onnx.TensorProto.FLOAT  # the excluded node's weight stays float
    assert {weight_of[name] in weights for name in matmuls[1:]} == {False}  # the others read a DequantizeLinear
    no_matmul, _ = run_pass(OnnxStaticQuantization, bert_onnx, tmp_path / "types", calibration, data_config="calib",
                            op_types_to_exclude=["MatMul", "Gather"])
    quantized_graph = onnx.load(str(no_matmul.path / "model.onnx")).graph
    int8 = {t.name for t in quantized_graph.initializer if t.data_type == onnx.TensorProto.INT8}
    quantized_weights = {n.output[0] for n in quantized_graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    assert not [n.name for n in quantized_graph.node if n.op_type in ("MatMul", "Gather") and set(n.input) & quantized_weights]
    assert ops(no_matmul)["DequantizeLinear"] > 0  # other op types (Gemm, Add, ...) are quantized


def test_onnx_quantization_static_and_dynamic(bert_onnx, calibration, tmp_path):
    static, _ = run_pass(OnnxQuantization, bert_onnx, tmp_path / "static", calibration, data_config="calib",
                         precision="uint8", activation_type="uint8", calibrate_method="MinMax", quant_preprocess=True)
    assert ops(static)["DequantizeLinear"] >= 12 and relative_error(static, bert_onnx) < 0.1
    dynamic, metrics = run_pass(OnnxQuantization, bert_onnx, tmp_path / "dynamic", quant_mode="dynamic")
    assert metrics["quantized_nodes"] == ops(dynamic)["MatMulInteger"] >= 12
    assert relative_error(dynamic, bert_onnx) < 0.1


def test_bad_parameters_are_one_line_errors(bert_onnx, calibration, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="quant_format: QOperator quantizes to 8 bits only; use QDQ for int16/uint16"):
        OnnxStaticQuantizationConfig.model_validate({"data_config": "c", "quant_format": "QOperator",
                                                     "activation_type": "uint16"})
    with pytest.raises(ValidationError, match="data_config: static quantization calibrates on a data config"):
        OnnxQuantizationConfig.model_validate({})
    with pytest.raises(ValidationError, match="Input should be 'int8', 'uint8', 'int16' or 'uint16'"):
        OnnxStaticQuantizationConfig.model_validate({"data_config": "c", "precision": "int3"})
    with pytest.raises(OlivepressError, match="nodes_to_exclude: no node named '/bert/Matmul'"):
        run_pass(OnnxStaticQuantization, bert_onnx, tmp_path / "x", calibration, data_config="calib",
                 nodes_to_exclude=["/bert/Matmul"])
    with pytest.raises(OlivepressError, match="extra_options: MatMulConstBOnly is given both as a parameter and in"):
        run_pass(OnnxStaticQuantization, bert_onnx, tmp_path / "y", calibration, data_config="calib",
                 MatMulConstBOnly=True, extra_options={"MatMulConstBOnly": False})


def test_a_document_calibrates_on_its_data_config(bert_folder, bert_onnx, tmp_path, write_doc, cli):
    data_file = tmp_path / "calibration.jsonl"
    data_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in CALIBRATION))
    doc = {
        "input_model": {"type": "HfModel", "model_path": str(bert_folder), "task": "text-classification"},
        "data_configs": [{"name": "calib", "type": "HuggingfaceContainer",
                          "load_dataset_config": {"data_name": "json", "data_files": str(data_file)},
                          "pre_process_data_config": {"corpus_strategy": "line-by-line", "max_seq_len": 24},
                          "dataloader_config": {"batch_size": 4}}],
        "passes": {"conversion": {"type": "OnnxConversion", "save_as_external_data": True,
                                  "all_tensors_to_one_file": True, "external_data_name": "weights.pb"},
                   "quantize": {"type": "OnnxStaticQuantization", "data_config": "calib", "quant_preprocess": True,
                                "activation_type": "uint8", "precision": "uint8"},
                   "tag": {"type": "AddOliveMetadata", "graph_name": "tiny-bert-int8"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, out, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    assert footprint["passes"][1]["metrics"]["calibration_batches"] == 4
    model = OnnxModel(tmp_path / "out" / "model")
    assert onnx.load(str(model.path / "model.onnx"), load_external_data=False).graph.name == "tiny-bert-int8"
    assert relative_error(model, bert_onnx) < 0.06

    data_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in CALIBRATION[:8]))
    code, out, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("pass conversion (OnnxConversion): from cache")  # other data: calibrate again
    assert lines[1].startswith("pass quantize (OnnxStaticQuantization): ran in ")
