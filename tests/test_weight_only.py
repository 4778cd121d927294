"""Olive's ONNX weight-only quantizers under their own names, and MatMulNBitsToQDQ, on the tiny Llama export."""

import logging
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import version_converter
from pass_runner import run_pass

from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.onnx.conversion import OnnxConversion
from olivepress.passes.onnx.mnb_to_qdq import MatMulNBitsToQDQ
from olivepress.passes.onnx.model_files import save_onnx
from olivepress.passes.onnx.quantization import OnnxMatMulNBits
from olivepress.passes.onnx.weight_only import (
    OnnxBlockWiseRtnQuantization,
    OnnxHqqQuantization,
    OnnxKQuantQuantization,
)

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def llama_onnx(tiny_llama, tmp_path_factory) -> OnnxModel:
    return run_pass(OnnxConversion, HfModel(tiny_llama), tmp_path_factory.mktemp("llama-onnx"))[0]


def ops(model: OnnxModel) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(model.path / "model.onnx"), load_external_data=False).graph.node)


def logits(model: OnnxModel, accuracy_level: int | None = None) -> np.ndarray:
    feed = {"input_ids": np.random.default_rng(3).integers(0, 320, (2, 9)), "attention_mask": np.ones((2, 9), np.int64)}
    options = ort.SessionOptions()
    if accuracy_level is not None:  # onnxruntime fuses DequantizeLinear + MatMul into MatMulNBits at this level
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", str(accuracy_level))
    session = ort.InferenceSession(str(model.path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def relative_error(model: OnnxModel, reference: OnnxModel, accuracy_level: int | None = None) -> float:
    expected = logits(reference)
    return float(np.abs(logits(model, accuracy_level) - expected).max() / np.abs(expected).max())


def test_olive_names_and_defaults(llama_onnx, tmp_path, caplog):
    assert OnnxBlockWiseRtnQuantization.Config().block_size == OnnxHqqQuantization.Config().block_size == 128
    with caplog.at_level(logging.WARNING):
        rtn, metrics = run_pass(OnnxBlockWiseRtnQuantization, llama_onnx, tmp_path / "rtn", block_size=32)
    assert [r.getMessage() for r in caplog.records] == [
        "OnnxBlockWiseRtnQuantization: the embedding (Gather) stays float: it is quantized at 4 bits in graphs of "
        "opset 21 or later (this one: 4 bits, opset 17)"]
    assert ops(rtn)["MatMulNBits"] == metrics["quantized_nodes"] == 15  # 7 per layer and the LM head
    # measured: 0.17 of the largest logit, as OnnxMatMulNBits' RTN (the same quantizer)
    assert relative_error(rtn, llama_onnx) < 0.25

    opset21 = tmp_path / "opset21"
    opset21.mkdir()
    save_onnx(version_converter.convert_version(onnx.load(str(llama_onnx.path / "model.onnx")), 21), opset21)
    embedded, _ = run_pass(OnnxBlockWiseRtnQuantization, OnnxModel(opset21), tmp_path / "rtn21", block_size=32)
    assert ops(embedded)["GatherBlockQuantized"] == 1 and ops(embedded)["MatMulNBits"] == 15

    for pass_class in (OnnxHqqQuantization, OnnxKQuantQuantization):
        quantized, metrics = run_pass(pass_class, llama_onnx, tmp_path / pass_class.name, block_size=32,
                                      nodes_to_exclude=["/lm_head/MatMul"])
        assert ops(quantized)["MatMulNBits"] == metrics["quantized_nodes"] == 14
        assert relative_error(quantized, llama_onnx) < 0.25  # measured: HQQ 0.13, k_quant 0.13


def test_nodes_to_include(llama_onnx, tmp_path):
    one, metrics = run_pass(OnnxKQuantQuantization, llama_onnx, tmp_path, block_size=32,
                            nodes_to_include=["/model/layers.0/mlp/down_proj/MatMul"])
    assert metrics["quantized_nodes"] == 1 and ops(one)["MatMulNBits"] == 1


@pytest.mark.parametrize("options", [{}, {"use_int4": True}, {"use_transpose_op": True, "add_zero_point": True}])
@pytest.mark.parametrize("is_symmetric", [True, False])
def test_matmul_nbits_to_qdq_keeps_the_quantized_values(options, is_symmetric, llama_onnx, tmp_path):
    # accuracy level 1 (fp32 activations) on both sides: the CPU kernels otherwise compute with int8 activations
    nbits, _ = run_pass(OnnxMatMulNBits, llama_onnx, tmp_path / "nbits", block_size=32, is_symmetric=is_symmetric,
                        accuracy_level=1)
    qdq, metrics = run_pass(MatMulNBitsToQDQ, nbits, tmp_path / "qdq", nodes_to_exclude=["/lm_head/MatMul_Q4"],
                            **options)
    counts = ops(qdq)
    assert metrics["converted_nodes"] == counts["DequantizeLinear"] == 14
    assert counts["MatMulNBits"] == 1  # the excluded LM head
    assert counts["Transpose"] >= (14 if options.get("use_transpose_op") else 0)
    graph = onnx.load(str(qdq.path / "model.onnx"), load_external_data=False).graph
    expected_type = onnx.TensorProto.INT4 if options.get("use_int4") else onnx.TensorProto.UINT4
    assert {t.data_type for t in graph.initializer if t.name.endswith(".qweight")} == {expected_type}
    zero_points = [t for t in graph.initializer if t.name.endswith(".qzeros")]
    assert bool(zero_points) == (not is_symmetric or not options.get("use_int4") or bool(options.get("add_zero_point")))
    # the same quantized weights (measured: identical logits; onnxruntime fuses DequantizeLinear + MatMul back)
    assert relative_error(qdq, nbits, accuracy_level=1) < 1e-4
