"""CaptureSplitInfo, SplitModel, ComposeOnnxModels and StaticLLM on the tiny Llama: the parts, run one after another,
compute the whole model's logits; composed again they are one model with the same logits; the static graphs have fixed
token shapes and the same logits as the dynamic model, and GenAI generates the same tokens with them."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from pass_runner import pass_context, run_pass
from pydantic import ValidationError

from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import CompositeModel, HfModel, OnnxModel
from olivepress.passes.onnx.compose import ComposeOnnxModels, compose
from olivepress.passes.onnx.conversion import OnnxConversion
from olivepress.passes.onnx.graph_surgeries import GraphSurgeries
from olivepress.passes.onnx.model_builder import ModelBuilder
from olivepress.passes.onnx.split import SplitModel
from olivepress.passes.onnx.static_llm import StaticLLM
from olivepress.passes.pytorch.capture_split_info import CaptureSplitInfo, CaptureSplitInfoConfig, split_assignments
from olivepress.passes.registry import PassRegistry

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = np.random.default_rng(0).integers(3, 300, (2, 7)).astype(np.int64)
MASK = np.ones_like(IDS)
MASK[0, -2:] = 0  # the first row padded at its end
THREE_PARTS = {"model.embed_tokens": 0, "model.layers.0": 1, "model.layers.1": 2, "lm_head": 3}


def session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_parts(model: CompositeModel, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the named parts in order, each reading its inputs by name from the feeds and the earlier parts' outputs."""
    values = dict(feeds)
    for name in names:
        part = session(model.path / model.components[name])
        outputs = part.run(None, {value.name: values[value.name] for value in part.get_inputs()})
        values.update(zip([value.name for value in part.get_outputs()], outputs, strict=True))
    return values


def dims(value) -> list[int | str]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def exported(tiny_llama, tmp_path_factory):
    """CaptureSplitInfo (2 parts) then OnnxConversion: the whole graph, with the assignment in config.json beside it."""
    folder = tmp_path_factory.mktemp("exported")
    captured, metrics = run_pass(CaptureSplitInfo, HfModel(tiny_llama), folder / "capture", num_splits=2)
    model, _ = run_pass(OnnxConversion, captured, folder / "conversion")
    return captured, model, metrics


@pytest.fixture(scope="module")
def built(tiny_llama, tmp_path_factory):
    """The GenAI builder's fp32 model (GroupQueryAttention, KV cache), and the same with past_seq_len/total_seq_len
    inputs in place of the attention mask (what GenAI's sliding window feeds)."""
    folder = tmp_path_factory.mktemp("built")
    model, _ = run_pass(ModelBuilder, HfModel(tiny_llama), folder / "builder", precision="fp32")
    lengths, _ = run_pass(GraphSurgeries, model, folder / "surgery",
                          surgeries=[{"surgeon": "AttentionMaskToSequenceLengths"}])
    return model, lengths


# ---------------------------------------------------------------- CaptureSplitInfo


@pytest.mark.slow
def test_capture_split_info_records_the_assignment(exported, tiny_llama):
    captured, _, metrics = exported
    recorded = json.loads((captured.path / "config.json").read_text())
    assert recorded["split_assignments"] == {"model.layers.0": 0, "model.layers.1": 1}
    assert metrics == {"num_splits": 2}
    original = json.loads((tiny_llama / "config.json").read_text())
    assert {key: value for key, value in recorded.items() if key != "split_assignments"} == original
    assert (captured.path / "model.safetensors").read_bytes() == (tiny_llama / "model.safetensors").read_bytes()


@pytest.mark.parametrize("num_splits", [1, 2, 3, 5])
def test_capture_split_info_matches_numpy_array_split(num_splits):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=7, num_attention_heads=2)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    layers = [f"model.layers.{index}" for index in range(7)]
    expected = {name: part for part, names in enumerate(np.array_split(layers, num_splits)) for name in names}
    assert split_assignments(skeleton, CaptureSplitInfoConfig(num_splits=num_splits)) == expected
    unique = split_assignments(skeleton, CaptureSplitInfoConfig(num_splits=num_splits, unique_embeds_lm_head_splits=True))
    assert unique == {"model.embed_tokens": 0, **{name: part + 1 for name, part in expected.items()},
                      "lm_head": num_splits + 1}
    blocks = split_assignments(skeleton, CaptureSplitInfoConfig(num_splits=2, block_to_split="model"))
    assert blocks == {"model.embed_tokens": 0, "model.layers": 0, "model.norm": 1, "model.rotary_emb": 1}


def test_capture_split_info_parameters():
    config = CaptureSplitInfo.Config.model_validate({"num_splits": 4, "unique_embeds_lm_head_splits": True,
                                                      "block_to_split": ["model.layers"]})
    assert config.block_to_split == ["model.layers"]
    with pytest.raises(ValidationError, match="num_splits is required"):
        CaptureSplitInfo.Config.model_validate({})
    with pytest.raises(ValidationError, match="accelerator's memory, which olivepress does not model"):
        CaptureSplitInfo.Config.model_validate({"num_splits": 2, "cost_model": "costs.csv"})


# ---------------------------------------------------------------- SplitModel and ComposeOnnxModels


@pytest.fixture(scope="module")
def split(exported, tmp_path_factory):
    _, model, _ = exported
    return run_pass(SplitModel, model, tmp_path_factory.mktemp("split"))


@pytest.mark.slow
def test_split_parts_compute_the_whole_model(exported, split):
    _, whole_model, _ = exported
    parts, metrics = split
    assert metrics == {"parts": 2}
    assert parts.components == {"split_0": "split_0.onnx", "split_1": "split_1.onnx"}
    whole = session(whole_model.path / "model.onnx").run(None, {"input_ids": IDS, "attention_mask": MASK})[0]
    values = run_parts(parts, list(parts.components), {"input_ids": IDS, "attention_mask": MASK})
    assert np.abs(values["logits"] - whole).max() < 1e-5
    first, second = (onnx.load(str(parts.path / file)) for file in parts.components.values())
    for part in (first, second):
        onnx.checker.check_model(part)
    assert [value.name for value in first.graph.input] == ["input_ids", "attention_mask"]
    assert {value.name for value in second.graph.input} <= {value.name for value in first.graph.output}
    assert [value.name for value in second.graph.output] == ["logits"]
    assert any(node.name == "/model/embed_tokens/Gather" for node in first.graph.node)
    assert not any(node.name.startswith("/model/layers.1/") for node in first.graph.node)
    assert any(node.name == "/lm_head/MatMul" for node in second.graph.node)
    assert (parts.path / "tokenizer.json").is_file()


@pytest.mark.slow
def test_split_assignments_parameter_and_metadata(exported, tmp_path):
    _, model, _ = exported
    swapped, _ = run_pass(SplitModel, model, tmp_path / "string", split_assignments="model.layers.0=1;model.layers.1=0")
    # layer 1 reads layer 0, so nothing may come before part 1: it all lands there and part 0 stays empty
    assert swapped.components == {"split_1": "split_1.onnx"}
    proto = onnx.load(str(model.path / "model.onnx"))
    onnx.helper.set_model_props(proto, {"split_assignments": "model.layers.0=0;model.layers.1=0;lm_head=1"})
    (tmp_path / "meta").mkdir()
    onnx.save_model(proto, str(tmp_path / "meta" / "model.onnx"))
    from_metadata, _ = run_pass(SplitModel, OnnxModel(tmp_path / "meta"), tmp_path / "from_metadata")
    lm_head = onnx.load(str(from_metadata.path / "split_1.onnx")).graph
    assert [node.name for node in lm_head.node] == ["/lm_head/MatMul"]
    with pytest.raises(OlivepressError, match="not of the form 'name1=0;name2=1'"):
        run_pass(SplitModel, model, tmp_path / "bad", split_assignments="model.layers.0:0")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.onnx").write_bytes((model.path / "model.onnx").read_bytes())
    (bare / "model.onnx.data").write_bytes((model.path / "model.onnx.data").read_bytes())
    with pytest.raises(OlivepressError, match="carries no split_assignments; run CaptureSplitInfo"):
        run_pass(SplitModel, OnnxModel(bare), tmp_path / "none")


@pytest.mark.slow
def test_compose_gives_one_model_with_the_same_logits(exported, split, tmp_path):
    _, whole_model, _ = exported
    parts, _ = split
    composed, metrics = run_pass(ComposeOnnxModels, parts, tmp_path, save_as_external_data=False)
    assert isinstance(composed, OnnxModel) and sorted(file.name for file in composed.path.glob("*.onnx*")) == ["model.onnx"]
    whole_proto = onnx.load(str(whole_model.path / "model.onnx"))
    proto = onnx.load(str(composed.path / "model.onnx"))
    onnx.checker.check_model(proto)
    assert [value.name for value in proto.graph.input] == ["input_ids", "attention_mask"]
    assert [value.name for value in proto.graph.output] == ["logits"]
    assert metrics["nodes"] == len(proto.graph.node) and metrics["parts"] == 2
    # the constants the split copied into both parts are kept once
    assert len({node.name for node in proto.graph.node}) == len(proto.graph.node)
    assert len(proto.graph.node) <= len(whole_proto.graph.node)
    whole = session(whole_model.path / "model.onnx").run(None, {"input_ids": IDS, "attention_mask": MASK})[0]
    logits = session(composed.path / "model.onnx").run(None, {"input_ids": IDS, "attention_mask": MASK})[0]
    assert np.abs(logits - whole).max() < 1e-5


def test_compose_refuses_parts_out_of_order():
    from onnx import TensorProto, helper

    def part(source: str, target: str):
        value = helper.make_tensor_value_info
        graph = helper.make_graph([helper.make_node("Relu", [source], [target], name=f"relu_{target}")], "g",
                                  [value(source, TensorProto.FLOAT, [1])], [value(target, TensorProto.FLOAT, [1])])
        return helper.make_model(graph)

    assert [value.name for value in compose([part("a", "b"), part("b", "c")]).graph.output] == ["c"]
    with pytest.raises(OlivepressError, match="part 1 outputs 'a', which an earlier part reads"):
        compose([part("a", "b"), part("b", "a")])
    with pytest.raises(OlivepressError, match="part 1 outputs 'b', which an earlier part outputs too"):
        compose([part("a", "b"), part("x", "b")])


# ---------------------------------------------------------------- StaticLLM


@pytest.fixture(scope="module")
def static(built, tmp_path_factory):
    _, lengths = built
    folder = tmp_path_factory.mktemp("static")
    parts, _ = run_pass(SplitModel, lengths, folder / "split", split_assignments=THREE_PARTS)
    model, _ = run_pass(StaticLLM, parts, folder / "static", context_length=8, batch_size=1)
    return parts, model


@pytest.mark.slow
def test_static_llm_layout_and_fixed_shapes(static):
    _, model = static
    assert list(model.components) == ["embeddings", "context_0", "context_1", "iterator_0", "iterator_1", "lm_head"]
    assert model.llm_pipeline == {"embeddings": "embeddings", "context": ["context_0", "context_1"],
                                  "iterator": ["iterator_0", "iterator_1"], "lm_head": "lm_head"}
    # the context and iterator graphs of a part read one weight file
    assert sorted(file.name for file in model.path.glob("*.data")) == [
        "embeddings.onnx.data", "lm_head.onnx.data", "transformer_0.onnx.data", "transformer_1.onnx.data"]
    for group, tokens in (("context", 8), ("iterator", 1)):
        graph = onnx.load(str(model.path / f"{group}_0.onnx"), load_external_data=False).graph
        shapes = {value.name: dims(value) for value in [*graph.input, *graph.output]}
        assert shapes["/model/embed_tokens/Gather/output_0"] == [1, tokens, 64]
        assert shapes["past_key_values.0.key"][:2] == [1, 2]  # the cache's length stays the runtime's, as in Olive
        assert shapes["past_seq_len"] == [1, 1] and shapes["total_seq_len"] == []
        assert shapes["/model/layers.0/mlp/down_proj/MatMul/output_0"] == [1, tokens, 64]
    genai = json.loads((model.path / "genai_config.json").read_text())
    decoder = genai["model"]["decoder"]
    assert genai["model"]["type"] == "decoder-pipeline" and "filename" not in decoder
    assert decoder["sliding_window"] == {"window_size": 8, "pad_value": 0, "alignment": "left",
                                         "slide_key_value_cache": False}
    stages = decoder["pipeline"][0]
    assert list(stages) == list(model.components)
    assert stages["context_0"]["run_on_token_gen"] is False and stages["iterator_1"]["run_on_prompt"] is False
    assert stages["lm_head"]["is_lm_head"] is True and stages["iterator_0"]["filename"] == "iterator_0.onnx"


def kv_feeds(past: int) -> dict[str, np.ndarray]:
    empty = np.zeros((1, 2, past, 16), dtype=np.float32)
    return {f"past_key_values.{layer}.{kind}": empty for layer in (0, 1) for kind in ("key", "value")}


@pytest.mark.slow
def test_static_llm_logits_match_the_dynamic_model(built, static):
    model_with_mask, _ = built
    _, model = static
    tokens = IDS[:1, :]
    prompt = np.concatenate([tokens, IDS[1:, :1]], axis=1)  # 8 tokens: one context window
    next_token = IDS[1:, 1:2]
    dynamic = session(model_with_mask.path / "model.onnx")
    reference = dynamic.run(["logits"], {"input_ids": np.concatenate([prompt, next_token], axis=1),
                                         "attention_mask": np.ones((1, 9), np.int64), **kv_feeds(0)})[0]
    pipeline = model.llm_pipeline
    assert pipeline is not None
    context = run_parts(model, ["embeddings", *pipeline["context"], "lm_head"],
                        {"input_ids": prompt, "past_seq_len": np.array([[7]], np.int32),
                         "total_seq_len": np.array(8, np.int32), **kv_feeds(0)})
    assert np.abs(context["logits"] - reference[:, :8]).max() < 1e-5
    presents = {f"past_key_values.{layer}.{kind}": context[f"present.{layer}.{kind}"]
                for layer in (0, 1) for kind in ("key", "value")}
    step = run_parts(model, ["embeddings", *pipeline["iterator"], "lm_head"],
                     {"input_ids": next_token, "past_seq_len": np.array([[8]], np.int32),
                      "total_seq_len": np.array(9, np.int32), **presents})
    assert np.abs(step["logits"] - reference[:, 8:]).max() < 1e-5


@pytest.mark.slow
def test_genai_generates_the_same_tokens_with_the_static_model(built, static):
    from olivepress.runtime.generate import GenAIModel, GenerationOptions

    builder_model, _ = built
    _, model = static
    options = GenerationOptions(max_length=24, use_chat_template=False)
    prompt = "What's a must-see in Paris?"
    loaded = GenAIModel(builder_model.path)
    prompt_length = len(loaded.prompt_ids(prompt, False))
    dynamic = list(loaded.tokens(prompt, options))
    static_tokens = list(GenAIModel(model.path).tokens(prompt, options))
    assert len(dynamic) == 24 - prompt_length
    # GenAI's sliding window counts the prompt padded to whole windows of 8 against max_length
    assert len(static_tokens) == 24 - -(-prompt_length // 8) * 8 > 4
    assert static_tokens == dynamic[:len(static_tokens)]


@pytest.mark.slow
def test_genai_refuses_the_split_parts(static):
    from olivepress.runtime.generate import GenAIModel

    parts, _ = static
    with pytest.raises(OlivepressError, match="genai_config.json names model.onnx, which the folder lacks: a composite "
                                              "model of SplitModel's parts runs in GenAI after StaticLLM"):
        GenAIModel(parts.path)


@pytest.mark.slow
def test_static_llm_refusals(split, static, tmp_path):
    parts, _ = split
    with pytest.raises(OlivepressError, match="at least 3 parts; CaptureSplitInfo's unique_embeds_lm_head_splits"):
        run_pass(StaticLLM, parts, tmp_path / "two")
    three = CompositeModel(parts.path, {"a": "split_0.onnx", "b": "split_0.onnx", "c": "split_1.onnx"})
    with pytest.raises(OlivepressError, match="part 'b' has no GroupQueryAttention; only GQA models"):
        run_pass(StaticLLM, three, tmp_path / "mha")
    static_parts, _ = static
    context = pass_context(tmp_path / "qnn", "QNNExecutionProvider")
    with pytest.raises(OlivepressError, match="StaticLLM for QNN GPU .* olivepress-qnn plugin"):
        StaticLLM().run(static_parts, StaticLLM.Config(), context)


@pytest.mark.slow
def test_compose_refuses_a_static_llm(static, tmp_path):
    _, model = static
    with pytest.raises(OlivepressError, match="composing a StaticLLM model's context and iterator groups"):
        run_pass(ComposeOnnxModels, model, tmp_path)


# ---------------------------------------------------------------- documents


def test_olive_parameter_names_are_accepted():
    registry = PassRegistry.builtin()
    for name, params in (("CaptureSplitInfo", {"num_splits": 4, "unique_embeds_lm_head_splits": True}),
                         ("SplitModel", {"save_as_external_data": True, "split_assignments": "a=0;b=1"}),
                         ("StaticLLM", {"batch_size": 1, "context_length": 64, "group_session_options": {
                             "log_id": "onnxruntime-genai", "provider_options": [{"VitisAI": {}}]}}),
                         ("ComposeOnnxModels", {"save_as_external_data": True, "external_data_name": "w.data"})):
        registry.get(name).Config.model_validate(params)


@pytest.mark.slow
def test_a_document_splits_and_composes(tiny_llama, tmp_path, write_doc, cli):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"cs": {"type": "CaptureSplitInfo", "num_splits": 2},
                   "c": {"type": "OnnxConversion", "target_opset": 17},
                   "sm": {"type": "SplitModel"},
                   "cp": {"type": "ComposeOnnxModels"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert "pass sm (SplitModel): ran" in out and "parts 2" in out
    written = json.loads((tmp_path / "out" / "model_config.json").read_text())
    assert written["type"] == "OnnxModel"
    logits = session(tmp_path / "out" / "model" / "model.onnx").run(None, {"input_ids": IDS, "attention_mask": MASK})[0]
    del document["passes"]["cp"]
    document["engine"]["output_dir"] = str(tmp_path / "parts")
    code, out, err = cli("run", "--config", write_doc(document, "parts.json"))
    assert code == 0, err
    assert "pass sm (SplitModel): from cache" in out
    written = json.loads((tmp_path / "parts" / "model_config.json").read_text())
    assert written == {"type": "CompositeModel", "config": {
        "model_path": "model", "model_components": {"split_0": "split_0.onnx", "split_1": "split_1.onnx"},
        "llm_pipeline": None}}
    parts = CompositeModel(tmp_path / "parts" / "model", written["config"]["model_components"])
    values = run_parts(parts, ["split_0", "split_1"], {"input_ids": IDS, "attention_mask": MASK})
    assert np.abs(values["logits"] - logits).max() < 1e-5
    code, out, _ = cli("cache", "verify", "--cache_dir", tmp_path / "cache")
    assert code == 0 and "0 damaged" in out


def test_consumers_refuse_a_composite_in_one_line(tiny_llama, tmp_path, write_doc, cli):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"c": {"type": "OnnxConversion"}, "sm": {"type": "SplitModel"},
                   "mb": {"type": "ModelBuilder", "metadata_only": True}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, _, err = cli("validate", "--config", write_doc(document))
    assert code == 2
    assert "passes.mb: ModelBuilder takes onnx models, but pass 'sm' is a composite model" in err
    del document["passes"]["mb"]
    document["evaluators"] = {"e": {"metrics": [{"name": "size", "type": "size_on_disk"}]}}
    document["engine"]["evaluator"] = "e"
    code, _, err = cli("validate", "--config", write_doc(document, "evaluated.json"))
    assert code == 2
    assert ("engine.evaluator: evaluator 'e' takes one model, but pass 'sm' makes a composite model (several ONNX "
            "parts): end with ComposeOnnxModels") in err
    assert len(err.strip().splitlines()) == 1


def test_evaluation_refuses_a_composite_in_one_line(tmp_path):
    from olivepress.evaluation.generation import open_generator

    parts = CompositeModel(tmp_path, {"split_0": "split_0.onnx"})
    with pytest.raises(OlivepressError, match="^generation takes one model, but this is a composite model .*: join "
                                              "them with ComposeOnnxModels first$"):
        open_generator(parts, Accelerator("cpu", "CPUExecutionProvider"))


def test_passes_lists_the_kinds(cli):
    code, out, _ = cli("passes")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "onnx -> composite" in lines["SplitModel"] and "composite -> onnx" in lines["ComposeOnnxModels"]
    assert "composite -> composite" in lines["StaticLLM"] and "hf -> hf" in lines["CaptureSplitInfo"]


@pytest.mark.slow
def test_a_document_makes_a_static_llm_that_generates(tiny_llama, tmp_path, write_doc, cli):
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "passes": {"cs": {"type": "CaptureSplitInfo", "num_splits": 1, "unique_embeds_lm_head_splits": True},
                   "mb": {"type": "ModelBuilder", "precision": "fp32"},
                   "gs": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "AttentionMaskToSequenceLengths"}]},
                   "sm": {"type": "SplitModel"},  # CaptureSplitInfo's assignment, carried by ModelBuilder
                   "st": {"type": "StaticLLM", "batch_size": 1, "context_length": 16}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    written = json.loads((tmp_path / "out" / "model_config.json").read_text())["config"]
    assert written["model_components"] == {name: f"{name}.onnx" for name in ("embeddings", "context", "iterator",
                                                                             "lm_head")}
    assert written["llm_pipeline"] == {"embeddings": "embeddings", "context": ["context"], "iterator": ["iterator"],
                                       "lm_head": "lm_head"}
    code, out, err = cli("generate", "-m", tmp_path / "out" / "model", "-p", "Best way to get around Tokyo?",
                         "--max_length", "64")
    assert code == 0, err
    assert out.strip()


@pytest.mark.slow
def test_a_composed_genai_model_generates_as_the_builders(built, tmp_path):
    from olivepress.runtime.generate import GenAIModel, GenerationOptions

    builder_model, _ = built
    parts, _ = run_pass(SplitModel, builder_model, tmp_path / "split", split_assignments=THREE_PARTS)
    composed, metrics = run_pass(ComposeOnnxModels, parts, tmp_path / "compose")
    assert metrics["parts"] == 4
    options = GenerationOptions(max_length=24, use_chat_template=False)
    expected = list(GenAIModel(builder_model.path).tokens("Take the train", options))
    assert list(GenAIModel(composed.path).tokens("Take the train", options)) == expected
