"""Olive's own example documents (tests/olive_examples), run end to end on the CPU.

Each runs from a copy of its folder, as Olive users run it. Its hub model is served by the hub stand-in under the
document's own id as a tiny random Llama, its hub dataset as a few rows; only sizes (steps, sequence lengths) and
the placeholders of Olive's templates are changed, in the copy.
"""

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pytest
from hub_standin import HubStandin

EXAMPLES = Path(__file__).parent / "olive_examples"
TEXT_ROWS = [{"text": f"Travel note {n}: the train to the coast leaves at {n} o'clock, the museum opens later."}
             for n in range(12)]
CODE_ROWS = [{"prompt": f"Write a function that adds {n}.", "response": f"def add(x):\n    return x + {n}",
              "programming_language": language} for n in range(16) for language in ("Python", "C")]
GUANACO_ROWS = [{"text": f"### Human: Where should I go in spring {n}?### Assistant: The coast, for the light."}
                for n in range(8)]


@dataclass
class Example:
    document: str  # below tests/olive_examples
    run_from: str  # the folder the document is run from, below its tag
    models: list[str]  # hub ids served as the tiny model
    datasets: dict[str, list[dict]] = field(default_factory=dict)  # hub dataset ids served as rows
    shrink: Callable[[dict], None] = lambda document: None  # sizes only
    passes: list[str] = field(default_factory=list)  # the pass types run, in order
    output: str = ""  # the output folder, below run_from
    metrics: list[str] = field(default_factory=list)  # sub-metrics the footprint must report


def _set(document: dict, path: list, value) -> None:
    holder = document
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value


def _shrink_lora(document: dict) -> None:
    lora = document["passes"]["lora"]["config"]
    lora["eval_dataset_size"] = 4
    lora["training_args"].update(max_steps=2, logging_steps=1, save_steps=1, per_device_train_batch_size=2,
                                 per_device_eval_batch_size=2)
    kwargs = document["data_configs"][0]["params_config"]["component_kwargs"]["pre_process_data"]
    kwargs["source_max_len"] = 16


def _shrink_falcon(document: dict) -> None:
    data = document["data_configs"][0]
    pre = data.get("pre_process_data_config") or data["params_config"]["component_kwargs"]["pre_process_data"]
    pre["max_seq_len" if "max_seq_len" in pre else "source_max_len"] = 16


def _embedding_template(document: dict) -> None:
    _set(document, ["input_model", "model_path"], "someorg/tiny-phi3-v")
    _set(document, ["passes", "convert", "torch_dtype"], "float32")


EXAMPLE_LIST = [
    Example("v0.9.2/opt_125m/awq.json", "v0.9.2/opt_125m", ["facebook/opt-125m"], passes=["AWQ"],
            output="models/awq"),
    pytest.param(Example("v0.9.2/opt_125m/awq_onnx.json", "v0.9.2/opt_125m", ["facebook/opt-125m"],
                         passes=["AWQ", "OnnxConversion", "OrtTransformersOptimization"], output="models/awq_onnx"),
                 marks=pytest.mark.xfail(strict=True, reason="OnnxConversion cannot trace olivepress's int4 "
                                         "QuantLinear (bitwise AND of integers); ModelBuilder exports AWQ output")),
    Example("v0.9.2/falcon/config.json", "v0.9.2/falcon", ["tiiuae/falcon-7b"],
            {"timdettmers/openassistant-guanaco": GUANACO_ROWS}, _shrink_falcon,
            ["OnnxConversion", "OrtTransformersOptimization"], "models/falcon",
            ["latency-avg", "latency-max", "latency-min"]),
    Example("v0.6.0/falcon/config.json", "v0.6.0/falcon", ["tiiuae/falcon-7b"],
            {"timdettmers/openassistant-guanaco": GUANACO_ROWS}, _shrink_falcon,
            ["OnnxConversion", "OrtTransformersOptimization"], "models/falcon",
            ["latency-avg", "latency-max", "latency-min"]),
    Example("v0.9.2/open_llama/open_llama_config.json", "v0.9.2/open_llama", ["openlm-research/open_llama_3b"],
            passes=["OnnxConversion", "OrtTransformersOptimization"], output="models/open_llama",
            metrics=["latency-avg"]),
    Example("v0.9.2/phi2/phi2_genai.json", "v0.9.2/phi2", ["microsoft/phi-2"], passes=["ModelBuilder"],
            output="models/model_builder"),
    Example("v0.6.0/phi2/phi2_genai.json", "v0.6.0/phi2", ["microsoft/phi-2"], passes=["ModelBuilder"],
            output="models/model_builder"),
    Example("v0.6.0/phi3/phi3_template.json", "v0.6.0/phi3", ["microsoft/Phi-3-mini-4k-instruct"],
            output="Opt_model"),
    Example("v0.9.2/phi3/vision/config_templates/text_config.json", "v0.9.2/phi3", ["someorg/tiny-phi3-v"],
            shrink=lambda document: _set(document, ["input_model", "model_path"], "someorg/tiny-phi3-v"),
            passes=["ModelBuilder"], output="output"),
    Example("v0.9.2/phi3/vision/config_templates/text_embedding_config.json", "v0.9.2/phi3", ["someorg/tiny-phi3-v"],
            shrink=_embedding_template, passes=["OnnxConversion"], output="output"),
    Example("v0.9.2/llama2/llama2_generate.json", "v0.9.2/llama2", ["meta-llama/Llama-2-7b-hf"],
            shrink=lambda document: _set(document, ["evaluators", "merged_evaluator", "metrics", 0, "user_config",
                                                    "run_kwargs", "max_new_tokens"], 4),
            output="models/llama2_generate", metrics=["latency_prompt_processing-avg"]),
    Example("v0.6.0/open_llama/open_llama_lora_tinycodes.json", "v0.6.0/open_llama",
            ["openlm-research/open_llama_7b_v2"], {"nampdn-ai/tiny-codes": CODE_ROWS}, _shrink_lora,
            ["LoRA"], "models/open_llama_lora_tinycodes"),
]


def _document_of(example) -> str:
    return example.document


def _copy(example: Example, tmp_path: Path) -> Path:
    """The example's tag folder copied, with the document shrunk; returns the folder to run from."""
    tag = example.document.split("/")[0]
    shutil.copytree(EXAMPLES / tag, tmp_path / tag)
    document_file = tmp_path / example.document
    document = json.loads(document_file.read_text(encoding="utf-8"))
    example.shrink(document)
    document_file.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return tmp_path / example.run_from


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=_document_of)
def test_olive_example_runs_end_to_end(example, tiny_llama, tmp_path, monkeypatch, cli, one_thread):
    run_from = _copy(example, tmp_path)
    hub = HubStandin()
    for repo_id in example.models:
        hub.publish(repo_id, tiny_llama)
    for repo_id, rows in example.datasets.items():
        hub.publish_rows(repo_id, rows)
    monkeypatch.chdir(run_from)
    with hub.serving(monkeypatch, tmp_path / "hf"):
        monkeypatch.setenv("HF_TOKEN", "standin-token")  # a user script asks for token=True
        _point_datasets_here(monkeypatch, hub, tmp_path / "datasets")
        code, out, err = cli("run", "--config", str(tmp_path / example.document).removeprefix(f"{run_from}/"))
    assert code == 0, err
    output = run_from / example.output
    footprint = json.loads((output / "footprint.json").read_text(encoding="utf-8"))
    assert [step["type"] for step in footprint["passes"]] == example.passes
    metrics = footprint["output_model"].get("metrics", {})
    assert sorted(metrics) == sorted(example.metrics)
    assert all(value > 0 for value in metrics.values())
    _check_model(example, output / "model")


def _point_datasets_here(monkeypatch, hub: HubStandin, cache: Path) -> None:
    """A user script calls datasets.load_dataset itself; `datasets` read its endpoint and cache at import."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)


def _check_model(example: Example, model: Path) -> None:
    last = example.passes[-1] if example.passes else "none"
    if last == "ModelBuilder":
        assert (model / "genai_config.json").is_file()
    elif last in ("OnnxConversion", "OrtTransformersOptimization"):
        graph = onnx.load(str(model / "model.onnx"), load_external_data=False)
        if "text_embedding" in example.document:
            assert [value.name for value in graph.graph.input] == ["input_ids"]
            assert [value.name for value in graph.graph.output] == ["inputs_embeds"]
        else:
            assert [value.name for value in graph.graph.output] == ["logits"]
    elif last == "AWQ":
        assert json.loads((model / "config.json").read_text())["quantization_config"]["quant_method"] == "awq"
    elif last == "none":  # the input model, evaluated and written out
        assert (model / "config.json").is_file()
    else:  # LoRA: the adapter beside the model
        assert (model.parent / "adapter" / "adapter_config.json").is_file()


# ---------------------------------------------------------------- Olive's classification accuracy

MRPC_FIRST = ["What's a must-see in Paris?", "Best way to get around Tokyo?", "I'm thrilled to start my new job!",
              "This haunted house is terrifying!", "The train to the coast leaves at noon.",
              "Missing the concert is sad.", "The museum opens later today.", "Take the train, walk, or ride a bike."]
MRPC_SECOND = ["The Eiffel Tower and the Louvre.", "The tone is joy.", "The tone is fear.", "It leaves late."]
MRPC_ROWS = [{"sentence1": first, "sentence2": MRPC_SECOND[n % 4], "label": label, "idx": n}
             for n, (first, label) in enumerate(zip(MRPC_FIRST, [0, 1, 1, 1, 0, 1, 1, 0], strict=True))]
GLUE_README = """---
configs:
- config_name: mrpc
  data_files:
  - split: validation
    path: mrpc/validation.jsonl
---
"""


def _publish_glue(hub: HubStandin, folder: Path) -> None:
    """GLUE's MRPC validation split, under the dataset's current id (the hub answers 'glue' with nyu-mll/glue)."""
    (folder / "mrpc").mkdir(parents=True)
    (folder / "README.md").write_text(GLUE_README, encoding="utf-8")
    (folder / "mrpc" / "validation.jsonl").write_text("".join(json.dumps(row) + "\n" for row in MRPC_ROWS),
                                                      encoding="utf-8")
    hub.publish("nyu-mll/glue", folder, kind="datasets")


def _shrink_bert(document: dict) -> None:
    _set(document, ["data_configs", 0, "load_dataset_config", "data_name"], "nyu-mll/glue")
    _set(document, ["passes", "session_params_tuning", "test_num"], 2)
    _set(document, ["passes", "session_params_tuning", "warmup_num"], 0)


def _onnx_classes(graph: Path, tokenizer_folder: Path) -> list[int]:
    """The graph's best class of each row, run here with onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from olivepress.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_folder)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    names = {value.name for value in session.get_inputs()}
    classes = []
    for row in MRPC_ROWS:
        encoded = tokenizer(row["sentence1"], row["sentence2"], return_tensors="np")
        feeds = {name: encoded[name].astype(np.int64) for name in names if name in encoded}
        feeds.update({name: np.zeros_like(encoded["input_ids"]) for name in names - set(feeds)})  # token types
        classes.append(int(session.run(None, feeds)[0].argmax(axis=1)[0]))
    return classes


def _torch_classes(folder: Path) -> list[int]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from olivepress.models.loading import load_tokenizer

    tokenizer, model = load_tokenizer(folder), AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return [int(model(**tokenizer(row["sentence1"], row["sentence2"], return_tensors="pt")).logits.argmax())
                for row in MRPC_ROWS]


def _hand_accuracy(preds: list[int]) -> dict[str, float]:
    """accuracy and f1 (binary, label 1) of the predictions, counted here."""
    assert set(preds) == {0, 1}  # the random model tells rows apart, so the scores test something
    pairs = list(zip(preds, [row["label"] for row in MRPC_ROWS], strict=True))
    tp, fp, fn = (sum(pair == case for pair in pairs) for case in ((1, 1), (1, 0), (0, 1)))
    return {"accuracy-accuracy": sum(p == t for p, t in pairs) / len(pairs), "accuracy-f1": 2 * tp / (2 * tp + fp + fn)}


@pytest.mark.slow
def test_olives_bert_classification_document_measures_accuracy_as_computed_by_hand(tmp_path, monkeypatch, cli,
                                                                                   one_thread):
    from tiny_models import write_tiny_bert

    example = Example("v0.9.2/bert/bert_ptq_cpu.json", "v0.9.2/bert", [], shrink=_shrink_bert)
    run_from = _copy(example, tmp_path)
    bert = write_tiny_bert(tmp_path / "tiny-bert", num_labels=2)
    hub = HubStandin()
    hub.publish("Intel/bert-base-uncased-mrpc", bert)
    _publish_glue(hub, tmp_path / "glue")
    monkeypatch.chdir(run_from)
    with hub.serving(monkeypatch, tmp_path / "hf"):
        code, out, err = cli("run", "--config", "bert_ptq_cpu.json")
    assert code == 0, err
    output = run_from / "models" / "bert_ptq_cpu"
    footprint = json.loads((output / "footprint.json").read_text(encoding="utf-8"))
    assert [step["type"] for step in footprint["passes"]] == [
        "OnnxConversion", "OrtTransformersOptimization", "OnnxQuantization", "OrtSessionParamsTuning", "AddOliveMetadata"]
    metrics, before = footprint["output_model"]["metrics"], footprint["search"]["input_model_metrics"]
    expected = _hand_accuracy(_onnx_classes(output / "model" / "model.onnx", bert))
    assert {name: metrics[name] for name in expected} == pytest.approx(expected)
    expected_before = _hand_accuracy(_torch_classes(bert))  # the input model, measured in torch
    assert {name: before[name] for name in expected_before} == pytest.approx(expected_before)
    assert metrics["latency-avg"] > 0 and metrics["throughput-avg"] > 0


# ---------------------------------------------------------------- Olive's pass_flows

LLAMA2_INT4_FLOW = "conversion_merged-transformers_optimization_fp32-blockwise_quant_int4"


def _cpu_flows(document: dict) -> None:
    """The flows Olive runs on the CPU: its OrtTransformersOptimization refuses float16 on CPUExecutionProvider
    (validate_config: 'does not support float16 very well'), so Olive skips the fp16 flow there."""
    document["pass_flows"] = [flow for flow in document["pass_flows"] if "transformers_optimization_fp16" not in flow]


@pytest.mark.slow
def test_olives_llama2_pass_flow_converts_with_a_kv_cache_and_quantizes_to_int4(tmp_path, monkeypatch, cli, one_thread):
    """llama2_multiep/config_cpu.json: OnnxConversion with past key/values (io_config kv_cache), fp32 optimization,
    int4 MatMulNBits, timed by the user script's dataloader_func for prompt and token generation. Llama-2-7b's
    stand-in keeps its shape: as many KV heads as heads (the script sizes its past tensors so)."""
    from tiny_models import write_tiny_decoder

    example = Example("v0.6.0/llama2/notebook/llama2_multiep/config_cpu.json", "v0.6.0/llama2/notebook/llama2_multiep",
                      [], shrink=_cpu_flows)
    run_from = _copy(example, tmp_path)
    hub = HubStandin()
    hub.publish("meta-llama/Llama-2-7b-hf", write_tiny_decoder(tmp_path / "tiny-llama2", "llama", num_key_value_heads=4))
    monkeypatch.chdir(run_from)
    with hub.serving(monkeypatch, tmp_path / "hf"):
        code, out, err = cli("run", "--config", "config_cpu.json")
    assert code == 0, err
    output = run_from / "models" / "llama2_cpu" / "meta-llama" / "Llama-2-7b-hf"
    assert json.loads((output / "footprint.json").read_text(encoding="utf-8"))["pass_flows"] == [LLAMA2_INT4_FLOW]
    footprint = json.loads((output / LLAMA2_INT4_FLOW / "footprint.json").read_text(encoding="utf-8"))
    assert [step["type"] for step in footprint["passes"]] == [
        "OnnxConversion", "OrtTransformersOptimization", "OnnxMatMulNBits"]
    metrics = footprint["output_model"]["metrics"]
    assert sorted(metrics) == ["latency_prompt_processing-avg", "latency_token_generation-avg"]
    assert all(value > 0 for value in metrics.values())
    graph = onnx.load(str(output / LLAMA2_INT4_FLOW / "model" / "model.onnx"), load_external_data=False).graph
    assert any(node.op_type == "MatMulNBits" for node in graph.node)
    assert [value.name for value in graph.input][3:5] == ["past_key_values.0.key", "past_key_values.0.value"]


# ---------------------------------------------------------------- Olive 0.6's PyTorchModel with hf_config and model_script

OPT_AWQ_PASSES = ["AWQ", "OnnxConversion", "OrtTransformersOptimization"]


def _without_awq(document: dict) -> None:
    """The AWQ pass taken out: olivepress's OnnxConversion does not trace its int4 layers (see awq_onnx above)."""
    del document["passes"]["4bit_awq_quantizer"]


def _run_opt_awq(example: Example, tiny_llama: Path, tmp_path: Path, monkeypatch, cli) -> Path:
    run_from = _copy(example, tmp_path)
    hub = HubStandin()
    hub.publish("facebook/opt-125m", tiny_llama)
    monkeypatch.chdir(run_from)
    with hub.serving(monkeypatch, tmp_path / "hf"):
        code, out, err = cli("run", "--config", "awq.json")
    assert code == 0, err
    return run_from / "models" / "opt_125m"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="OnnxConversion cannot trace olivepress's int4 QuantLinear (bitwise AND of "
                   "integers), as for v0.9.2/opt_125m/awq_onnx.json")
def test_olive_06_opt_awq_document_runs_as_written(tiny_llama, tmp_path, monkeypatch, cli, one_thread):
    output = _run_opt_awq(Example("v0.6.0/opt_125m/awq.json", "v0.6.0/opt_125m", ["facebook/opt-125m"]), tiny_llama,
                          tmp_path, monkeypatch, cli)
    footprint = json.loads((output / "footprint.json").read_text(encoding="utf-8"))
    assert [step["type"] for step in footprint["passes"]] == OPT_AWQ_PASSES


@pytest.mark.slow
def test_olive_06_opt_document_exports_the_hf_config_model_with_the_scripts_io_config_and_dummy_inputs(
        tiny_llama, tmp_path, monkeypatch, cli, one_thread):
    """v0.6.0/opt_125m/awq.json: a PyTorchModel whose hf_config names the hub model and whose model_script holds
    io_config and dummy_inputs_func (a stand-in script: Olive's imports olive). The model is the hub model; its
    OnnxConversion exports with the script's io_config (int32 inputs, the script's axis names), and the script's
    dataloader_func feeds the latency metric."""
    example = Example("v0.6.0/opt_125m/awq.json", "v0.6.0/opt_125m", ["facebook/opt-125m"], shrink=_without_awq)
    output = _run_opt_awq(example, tiny_llama, tmp_path, monkeypatch, cli)
    footprint = json.loads((output / "footprint.json").read_text(encoding="utf-8"))
    assert [step["type"] for step in footprint["passes"]] == OPT_AWQ_PASSES[1:]
    graph = onnx.load(str(output / "model" / "model.onnx"), load_external_data=False).graph
    assert [(value.name, value.type.tensor_type.elem_type) for value in graph.input] == [
        ("input_ids", onnx.TensorProto.INT32), ("attention_mask", onnx.TensorProto.INT32)]
    assert [dim.dim_param for dim in graph.input[0].type.tensor_type.shape.dim] == ["batch_size", "sequence_length"]
    assert footprint["output_model"]["metrics"]["latency-avg"] > 0
