"""GraphSurgeries: each surgeon on a small graph (or a tiny exported model) changes the graph as it says and leaves
the outputs as they were (or within the stated tolerance of an approximation)."""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_runner import run_pass
from pydantic import ValidationError

from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.onnx.graph_surgeries import GraphSurgeries, GraphSurgeriesConfig

VOCAB, HIDDEN, BLOCK = 48, 64, 32


def run_surgeries(model: OnnxModel, folder: Path, *surgeons: dict, **options) -> tuple[OnnxModel, dict]:
    return run_pass(GraphSurgeries, model, folder, surgeries=list(surgeons), **options)


def save_graph(folder: Path, nodes, inputs, outputs, initializers: dict, opset: int = 17) -> OnnxModel:
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(value, name) for name, value in initializers.items()])
    imports = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=imports), str(folder / "model.onnx"))
    return OnnxModel(folder)


def run(model: OnnxModel, feed: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model.path / model.onnx_file_name), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {name: value for name, value in feed.items() if name in names})


def graph_of(model: OnnxModel):
    return onnx.load(str(model.path / model.onnx_file_name)).graph


def op_counts(model: OnnxModel) -> Counter:
    return Counter(node.op_type for node in graph_of(model).node)


def stored_bytes(model: OnnxModel) -> int:
    return sum(file.stat().st_size for file in model.path.glob("model.onnx*"))


def ids_feed() -> dict:
    return {"input_ids": np.random.default_rng(2).integers(0, VOCAB, (2, 5)).astype(np.int64)}


# ---- TieWordEmbeddings ----------------------------------------------------------------------------

def float_lm(folder: Path, head_equals_embedding: bool = True) -> OnnxModel:
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(VOCAB, HIDDEN)).astype(np.float32)
    head = embedding.T.copy() if head_equals_embedding else rng.normal(size=(HIDDEN, VOCAB)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["embed_tokens.weight", "input_ids"], ["h"], name="/model/embed_tokens/Gather"),
             helper.make_node("Tanh", ["h"], ["t"], name="/model/norm/Tanh"),
             helper.make_node("MatMul", ["t", "lm_head.weight"], ["logits"], name="/lm_head/MatMul")]
    return save_graph(folder, nodes, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", VOCAB])],
                      {"embed_tokens.weight": embedding, "lm_head.weight": head})


def test_tie_word_embeddings_float(tmp_path):
    model = float_lm(tmp_path / "in")
    tied, metrics = run_surgeries(model, tmp_path / "tied", {"surgeon": "TieWordEmbeddings"})
    assert metrics == {"TieWordEmbeddings": 1}
    assert [t.name for t in graph_of(tied).initializer if t.dims == [VOCAB, HIDDEN]] == ["embed_tokens.weight"]
    assert "lm_head.weight" not in {t.name for t in graph_of(tied).initializer}
    assert op_counts(tied)["Gemm"] == 1 and op_counts(tied)["MatMul"] == 0
    assert stored_bytes(model) - stored_bytes(tied) >= VOCAB * HIDDEN * 4 - 1024  # one copy of the weight fewer
    expected, actual = run(model, ids_feed())[0], run(tied, ids_feed())[0]
    assert actual.shape == (2, 5, VOCAB) and np.abs(actual - expected).max() < 1e-5

    untied, metrics = run_surgeries(float_lm(tmp_path / "other", head_equals_embedding=False), tmp_path / "untied",
                                    {"surgeon": "TieWordEmbeddings"})
    assert metrics == {"TieWordEmbeddings": 0} and op_counts(untied)["MatMul"] == 1


def quantized_lm(folder: Path) -> OnnxModel:
    """An 8-bit GatherBlockQuantized embedding and an 8-bit MatMulNBits LM head holding the same quantized data."""
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(VOCAB, HIDDEN)).astype(np.float32)
    blocks = weight.reshape(VOCAB, HIDDEN // BLOCK, BLOCK)
    scales = (np.abs(blocks).max(axis=2) / 127).astype(np.float32)
    quantized = (np.clip(np.round(blocks / scales[..., None]), -128, 127) + 128).astype(np.uint8)
    zero_points = np.full((VOCAB, HIDDEN // BLOCK), 128, dtype=np.uint8)
    nodes = [
        helper.make_node("GatherBlockQuantized", ["embed.q", "input_ids", "embed.scales", "embed.zp"], ["h"],
                         name="/model/embed_tokens/GatherBlockQuantized", domain="com.microsoft", bits=8,
                         block_size=BLOCK, gather_axis=0, quantize_axis=1),
        helper.make_node("Tanh", ["h"], ["t"], name="/model/norm/Tanh"),
        helper.make_node("MatMulNBits", ["t", "head.q", "head.scales", "head.zp"], ["logits"],
                         name="/lm_head/MatMulNBits", domain="com.microsoft", K=HIDDEN, N=VOCAB, bits=8,
                         block_size=BLOCK),
    ]
    initializers = {"embed.q": quantized.reshape(VOCAB, HIDDEN), "embed.scales": scales, "embed.zp": zero_points,
                    "head.q": quantized.copy(), "head.scales": scales.ravel().copy(), "head.zp": zero_points.ravel().copy()}
    return save_graph(folder, nodes, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", VOCAB])],
                      initializers, opset=21)


def test_tie_word_embeddings_quantized(tmp_path):
    model = quantized_lm(tmp_path / "in")
    tied, metrics = run_surgeries(model, tmp_path / "tied", {"surgeon": "TieWordEmbeddings"})
    assert metrics == {"TieWordEmbeddings": 1}
    assert {t.name for t in graph_of(tied).initializer} >= {"embed.q", "embed.scales", "embed.zp"}
    assert not {t.name for t in graph_of(tied).initializer} & {"head.q", "head.scales", "head.zp"}
    assert np.array_equal(run(tied, ids_feed())[0], run(model, ids_feed())[0])
    assert stored_bytes(model) - stored_bytes(tied) >= VOCAB * HIDDEN - 1024


# ---- MatMulAddToGemm --------------------------------------------------------------------------------

def test_matmul_add_to_gemm(tmp_path):
    rng = np.random.default_rng(3)
    weights = {f"W{i}": rng.normal(size=(16, 16)).astype(np.float32) for i in range(3)}
    weights |= {f"b{i}": rng.normal(size=(16,)).astype(np.float32) for i in range(3)}
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["m0"], name="/fc0/MatMul"), helper.make_node("Add", ["m0", "b0"], ["a0"]),
             helper.make_node("Relu", ["a0"], ["r0"]),
             helper.make_node("MatMul", ["y", "W1"], ["m1"], name="/fc1/MatMul"), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]),
             # the output of the Add is a graph output: left alone, as in Olive
             helper.make_node("MatMul", ["r0", "W2"], ["m2"], name="/fc2/MatMul"), helper.make_node("Add", ["m2", "b2"], ["out"])]
    model = save_graph(tmp_path / "in", nodes,
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16]),
                        helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 16])],
                       [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 16]),
                        helper.make_tensor_value_info("r1", TensorProto.FLOAT, [2, 3, 16])], weights)
    gemm, metrics = run_surgeries(model, tmp_path / "gemm", {"surgeon": "MatMulAddToGemm"})
    assert metrics == {"MatMulAddToGemm": 2}
    assert op_counts(gemm)["Gemm"] == 2 and op_counts(gemm)["MatMul"] == 1 and op_counts(gemm)["Reshape"] == 2
    feed = {"x": rng.normal(size=(4, 16)).astype(np.float32), "y": rng.normal(size=(2, 3, 16)).astype(np.float32)}
    for expected, actual in zip(run(model, feed), run(gemm, feed), strict=True):
        assert np.abs(actual - expected).max() < 1e-5


# ---- ReplaceErfWithTanh, PowReduceSumPowDiv2LpNorm --------------------------------------------------

def test_replace_erf_with_tanh_and_lp_norm(tmp_path):
    nodes = [helper.make_node("Erf", ["x"], ["e"], name="/act/Erf"),
             helper.make_node("Pow", ["e", "two"], ["sq"]), helper.make_node("ReduceSum", ["sq", "axes"], ["s"], keepdims=1),
             helper.make_node("Pow", ["s", "half"], ["norm"]), helper.make_node("Div", ["e", "norm"], ["y"])]
    model = save_graph(tmp_path / "in", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32])],
                       {"two": np.array(2.0, np.float32), "half": np.array(0.5, np.float32),
                        "axes": np.array([-1], np.int64)})
    feed = {"x": np.random.default_rng(4).normal(size=(6, 32)).astype(np.float32)}
    expected = run(model, feed)[0]
    normalized, metrics = run_surgeries(model, tmp_path / "lp", {"surgeon": "PowReduceSumPowDiv2LpNorm"})
    assert metrics == {"PowReduceSumPowDiv2LpNorm": 1} and set(op_counts(normalized)) == {"Erf", "LpNormalization"}
    assert {t.name for t in graph_of(normalized).initializer} == set()  # the exponents and axes went with their nodes
    assert np.abs(run(normalized, feed)[0] - expected).max() < 1e-6
    rewritten, metrics = run_surgeries(normalized, tmp_path / "tanh", {"surgeon": "ReplaceErfWithTanh"})
    assert metrics == {"ReplaceErfWithTanh": 1} and set(op_counts(rewritten)) == {"Mul", "Tanh", "LpNormalization"}
    # tanh(x * 605/503) is within 0.019 of erf(x) everywhere; measured after the normalization: 0.0057
    assert np.abs(run(rewritten, feed)[0] - expected).max() < 0.01


# ---- on exported tiny models --------------------------------------------------------------------------

@pytest.mark.slow
def test_replace_attention_mask_value_on_an_exported_llama(tiny_llama, tmp_path):
    from olivepress.passes.onnx.conversion import OnnxConversion

    exported, _ = run_pass(OnnxConversion, HfModel(tiny_llama), tmp_path / "export")
    masked, metrics = run_surgeries(exported, tmp_path / "mask", {"surgeon": "ReplaceAttentionMaskValue"})
    assert metrics["ReplaceAttentionMaskValue"] >= 1
    lowest = min(float(numpy_helper.to_array(t).min()) for t in graph_of(masked).initializer
                 if t.data_type == TensorProto.FLOAT) if graph_of(masked).initializer else 0.0
    constants = [numpy_helper.to_array(n.attribute[0].t) for n in graph_of(masked).node
                 if n.op_type in ("Constant", "ConstantOfShape") and n.attribute and n.attribute[0].t.data_type == 1]
    assert min([lowest, *(float(c.min()) for c in constants if c.size)]) >= -1e4
    mask = np.ones((2, 7), dtype=np.int64)
    mask[0, :3] = 0  # left padding
    feed = {"input_ids": np.random.default_rng(5).integers(0, 300, (2, 7)), "attention_mask": mask}
    expected, actual = run(exported, feed)[0], run(masked, feed)[0]
    assert np.abs(actual - expected)[mask.astype(bool)].max() < 1e-4


@pytest.fixture(scope="module")
def built_llama(tiny_llama, tmp_path_factory) -> OnnxModel:
    from olivepress.passes.onnx.model_builder import ModelBuilder

    built, _ = run_pass(ModelBuilder, HfModel(tiny_llama), tmp_path_factory.mktemp("built"), precision="fp32")
    return built


def builder_feed(model: OnnxModel, mask: np.ndarray) -> dict:
    """A first step (no past) of a GenAI model: ids, mask and empty past key/values."""
    session = ort.InferenceSession(str(model.path / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": np.random.default_rng(6).integers(3, 300, mask.shape), "attention_mask": mask}
    for value in session.get_inputs():
        if value.name.startswith("past_key_values"):
            feed[value.name] = np.zeros((mask.shape[0], value.shape[1], 0, 64 // 4), dtype=np.float32)  # head size
    return feed


@pytest.mark.slow
def test_npu_surgeries_on_a_genai_model(built_llama, tmp_path):
    rewritten, metrics = run_surgeries(built_llama, tmp_path, {"surgeon": "SimplifiedLayerNormToL2Norm"},
                                       {"surgeon": "AttentionMaskToSequenceLengths"})
    assert metrics == {"SimplifiedLayerNormToL2Norm": 5, "AttentionMaskToSequenceLengths": 1}  # 2 layers x 2 + final
    counts = op_counts(rewritten)
    assert counts["LpNormalization"] == 5
    assert counts["SkipSimplifiedLayerNormalization"] == counts["SimplifiedLayerNormalization"] == 0
    inputs = {value.name: value for value in graph_of(rewritten).input}
    assert "attention_mask" not in inputs and {"past_seq_len", "total_seq_len"} <= set(inputs)
    assert (rewritten.path / "genai_config.json").is_file()

    mask = np.ones((1, 6), dtype=np.int64)
    feed = builder_feed(built_llama, mask)
    expected = run(built_llama, feed)[0]
    lengths = {"past_seq_len": np.array([[5]], dtype=np.int32), "total_seq_len": np.array(6, dtype=np.int32)}
    actual = run(rewritten, {**feed, **lengths})[0]
    # measured 6e-6 of the largest logit: L2 normalization leaves out RMSNorm's epsilon
    assert np.abs(actual - expected).max() < 1e-4 * np.abs(expected).max()


def test_unknown_surgeon_is_an_error_listing_the_known_ones():
    with pytest.raises(ValidationError, match=r"\[1\]: unknown surgeon 'TieWordEmbedding' \(did you mean "
                                              r"'TieWordEmbeddings'\?\); olivepress has TieWordEmbeddings, MatMulAddToGemm"):
        GraphSurgeriesConfig.model_validate({"surgeries": [{"surgeon": "MatMulAddToGemm"},
                                                           {"surgeon": "TieWordEmbedding"}]})
    with pytest.raises(ValidationError, match="unknown key 'replacment' \\(did you mean 'replacement'\\?\\)"):
        GraphSurgeriesConfig.model_validate({"surgeries": [{"surgeon": "ReplaceAttentionMaskValue", "replacment": -1}]})


@pytest.fixture(scope="module")
def longrope_phi3(tmp_path_factory) -> OnnxModel:
    """A tiny Phi-3 with LongRoPE (context 256, original 64), built fp32: its rotary cache is chosen by an If."""
    import torch
    from tiny_models import write_tokenizer
    from transformers import AutoModelForCausalLM, Phi3Config

    from olivepress.passes.onnx.model_builder import ModelBuilder

    folder = tmp_path_factory.mktemp("models") / "longrope"
    vocab = write_tokenizer(folder)
    config = Phi3Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                        original_max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)],
                                      "long_factor": [2.0 + 0.5 * i for i in range(8)]})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    built, _ = run_pass(ModelBuilder, HfModel(folder), tmp_path_factory.mktemp("longrope-built"), precision="fp32")
    return built


@pytest.mark.slow
@pytest.mark.parametrize(("use_large_cache", "length"), [(False, 6), (True, 70)])
def test_remove_rope_multi_cache(use_large_cache, length, longrope_phi3, tmp_path):
    single, metrics = run_surgeries(longrope_phi3, tmp_path, {"surgeon": "RemoveRopeMultiCache",
                                                              "use_large_cache": use_large_cache})
    assert metrics == {"RemoveRopeMultiCache": 1}
    assert op_counts(single)["If"] == 0 and op_counts(longrope_phi3)["If"] == 1
    assert {"cos_cache_single", "sin_cache_single"} <= {t.name for t in graph_of(single).initializer}
    # the kept cache gives the same logits where the If chose it: up to 64 tokens the short one, past it the long
    feed = builder_feed(longrope_phi3, np.ones((1, length), dtype=np.int64))
    expected = run(longrope_phi3, feed)[0]
    assert np.abs(run(single, feed)[0] - expected).max() < 1e-5 * np.abs(expected).max()
    if use_large_cache:  # a short prompt now also reads the long cache, unlike the original
        short = builder_feed(longrope_phi3, np.ones((1, 6), dtype=np.int64))
        assert np.abs(run(single, short)[0] - run(longrope_phi3, short)[0]).max() > 1e-3
    else:  # the short cache has rows for 64 positions only
        with pytest.raises(Exception, match="cos_cache dimension 0 shall not be less than total_sequence_length"):
            run(single, builder_feed(longrope_phi3, np.ones((1, 70), dtype=np.int64)))
