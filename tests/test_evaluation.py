"""Metrics with known answers on PyTorch and ONNX Runtime GenAI models, goals, objectives, the evaluation
cache, and the evaluators' document checks."""

import json
import math
import re
from pathlib import Path

import pytest
from conftest import builder_workflow
from pydantic import ValidationError

from olivepress.config.sections import DataConfig, EvaluatorConfig, GoalConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.evaluator import Evaluator
from olivepress.evaluation.generation import open_generator
from olivepress.evaluation.metrics import typed_metric
from olivepress.evaluation.objectives import (
    SubMetric,
    goal_threshold,
    meets,
    needs_baseline,
    objectives,
    sub_metrics,
)
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel, OnnxModel

CPU = Accelerator("cpu", "CPUExecutionProvider")
TEXTS = ["What's a must-see in Paris? The Eiffel Tower and the Louvre.",
         "Best way to get around Tokyo? Take the train, walk, or ride a bike."] * 3
PROMPTS = ["I'm thrilled to start my new job!", "This haunted house is terrifying!",
           "I can't believe I lost my keys again.", "Missing the concert is really disappointing."]


@pytest.fixture(scope="module")
def fp32_genai(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama exported to an fp32 GenAI folder: the same function as the torch model."""
    from olivepress.cli import main

    root = tmp_path_factory.mktemp("fp32")
    document = root / "fp32.json"
    document.write_text(json.dumps(builder_workflow(tiny_llama, root, precision="fp32")))
    assert main(["run", "--config", str(document)]) == 0
    return root / "out" / "model"


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    return path


def evaluator(tmp_path: Path, metrics: list[dict], data: list[DataConfig] = ()) -> Evaluator:
    return Evaluator(EvaluatorConfig.model_validate({"metrics": metrics}), {d.name: d for d in data}, CPU,
                     tmp_path / "cache", lambda name: f"fingerprint of {name}")


def data_config(name: str, file: Path, **pre_process) -> DataConfig:
    return DataConfig(name=name, load_dataset_config={"data_name": "json", "data_files": str(file)},
                      pre_process_data_config=pre_process)


# ------------------------------------------------------------------ perplexity


@pytest.mark.slow
def test_perplexity_matches_a_direct_torch_computation_on_torch_and_onnx(tiny_llama, fp32_genai, tmp_path, one_thread):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = data_config("text", jsonl(tmp_path / "text.jsonl", [{"text": t} for t in TEXTS]), max_seq_len=16)
    scorer = evaluator(tmp_path, [{"name": "ppl", "type": "perplexity", "data_config": "text"}], [data])
    on_torch = scorer.evaluate(HfModel(path=tiny_llama), "torch").metrics["ppl-perplexity"]
    on_onnx = scorer.evaluate(OnnxModel(path=fp32_genai), "onnx").metrics["ppl-perplexity"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    stream = [token for text in TEXTS for token in tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]]
    rows = torch.tensor([stream[i:i + 16] for i in range(0, len(stream) - 15, 16)])
    with torch.no_grad():
        expected = math.exp(AutoModelForCausalLM.from_pretrained(tiny_llama)(input_ids=rows, labels=rows).loss.item())
    assert on_torch == pytest.approx(expected, rel=1e-5)
    assert on_onnx == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------ generation: accuracy, latency, throughput


def test_accuracy_and_exact_match_on_planted_labels_agree_between_torch_and_genai(tiny_llama, fp32_genai, tmp_path):
    """Labels planted from the model's own greedy answers: the first word (accuracy only), the whole
    answer (both), and two wrong ones. So accuracy is 2/4 and exact match 1/4 on both backends."""
    generator = open_generator(HfModel(path=tiny_llama), CPU)
    answers = [generator.generate(generator.prompt_ids(f"Tone of: {p}", True), 6).text for p in PROMPTS]
    from olivepress.evaluation.accuracy import words

    assert len(words(answers[0])) >= 2  # so that its first word alone is not an exact match
    labels = [words(answers[0])[0], answers[1], "joy", "sadness"]
    rows = [{"phrase": p, "tone": label} for p, label in zip(PROMPTS, labels, strict=True)]
    data = data_config("tone", jsonl(tmp_path / "tone.jsonl", rows))
    scorer = evaluator(tmp_path, [{"name": "acc", "type": "accuracy", "data_config": "tone",
                                   "user_config": {"prompt_template": "Tone of: {phrase}", "label_col": "tone",
                                                   "max_new_tokens": 6},
                                   "sub_types": [{"name": "accuracy_score"}, {"name": "exact_match"}]}], [data])
    expected = {"acc-accuracy_score": 0.5, "acc-exact_match": 0.25}
    assert scorer.evaluate(HfModel(path=tiny_llama), "torch").metrics == expected
    assert scorer.evaluate(OnnxModel(path=fp32_genai), "onnx").metrics == expected


@pytest.mark.parametrize("backend", ["torch", "genai"])
def test_latency_and_throughput_time_exactly_max_new_tokens(backend, tiny_llama, fp32_genai, tmp_path):
    model = HfModel(path=tiny_llama) if backend == "torch" else OnnxModel(path=fp32_genai)
    generator = open_generator(model, CPU)
    ids = generator.prompt_ids(PROMPTS[0], True)
    assert [generator.generate(ids, n, exact=True).new_tokens for n in (1, 7)] == [1, 7]

    data = data_config("tone", jsonl(tmp_path / "tone.jsonl", [{"phrase": p} for p in PROMPTS]))
    timing = {"prompt_template": "{phrase}", "max_new_tokens": 4, "warmup_num": 1, "repeat_test_num": 5}
    scorer = evaluator(tmp_path, [
        {"name": "lat", "type": "latency", "data_config": "tone", "user_config": timing,
         "sub_types": [{"name": n} for n in ("avg", "min", "p50", "p90", "p99", "max")]},
        {"name": "tps", "type": "throughput", "data_config": "tone", "user_config": timing,
         "sub_types": [{"name": "avg"}, {"name": "min"}, {"name": "max"}]}], [data])
    metrics = scorer.evaluate(model, backend).metrics
    latency = [metrics[f"lat-{n}"] for n in ("min", "p50", "p90", "p99", "max")]
    assert latency == sorted(latency) and 0 < latency[0] and metrics["lat-min"] <= metrics["lat-avg"] <= metrics["lat-max"]
    assert metrics["tps-min"] <= metrics["tps-avg"] <= metrics["tps-max"]


# ------------------------------------------------------------------ size, custom metrics, the cache


def test_size_on_disk_counts_every_byte_of_the_model_and_its_adapter(tmp_path):
    (tmp_path / "model" / "sub").mkdir(parents=True)
    (tmp_path / "model" / "weights.bin").write_bytes(b"\0" * 1000)
    (tmp_path / "model" / "sub" / "more.bin").write_bytes(b"\1" * 234)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter.safetensors").write_bytes(b"\2" * 66)
    scorer = evaluator(tmp_path, [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}, {"name": "mb"}]}])
    metrics = scorer.evaluate(HfModel(path=tmp_path / "model", adapter_path=tmp_path / "adapter"), "m").metrics
    assert metrics == {"size-bytes": 1300, "size-mb": 0.0013}


def test_custom_metrics_are_called_once_per_model_and_script(tmp_path):
    script = tmp_path / "my_metric.py"
    script.write_text("def score(model, data_config, scale):\n"
                      "    (model.path / 'calls').open('a').write('x')\n"
                      "    return {'double': 2 * scale, 'name_length': len(model.path.name)}\n")
    (tmp_path / "m").mkdir()
    metric = {"name": "mine", "type": "custom",
              "user_config": {"user_script": str(script), "evaluate_func": "score", "evaluate_func_kwargs": {"scale": 3}},
              "sub_types": [{"name": "double", "higher_is_better": True}, {"name": "name_length", "higher_is_better": False}]}
    scorer = evaluator(tmp_path, [metric])
    first = scorer.evaluate(HfModel(path=tmp_path / "m"), "key")
    assert first.metrics == {"mine-double": 6, "mine-name_length": 1} and not first.cached
    assert scorer.evaluate(HfModel(path=tmp_path / "m"), "key").cached
    assert (tmp_path / "m" / "calls").read_text() == "x"
    script.write_text(script.read_text().replace("2 * scale", "4 * scale"))
    assert scorer.evaluate(HfModel(path=tmp_path / "m"), "key").metrics["mine-double"] == 12
    assert not scorer.evaluate(HfModel(path=tmp_path / "m"), "other key").cached

    metric["sub_types"].append({"name": "missing", "higher_is_better": True})
    from olivepress.errors import OlivepressError

    with pytest.raises(OlivepressError, match="metric 'mine': user_config.evaluate_func: score returned no number for 'missing'"):
        evaluator(tmp_path, [metric]).evaluate(HfModel(path=tmp_path / "m"), "key")


def test_the_evaluation_key_follows_the_data_and_the_metric_settings(tmp_path):
    base = {"name": "ppl", "type": "perplexity", "data_config": "text"}
    scorer = evaluator(tmp_path, [base])
    key = scorer.key(scorer.config.metrics[0], "model")
    assert scorer.key(scorer.config.metrics[0], "model") == key
    assert scorer.key(scorer.config.metrics[0], "other model") != key
    renamed = evaluator(tmp_path, [{**base, "name": "renamed", "sub_types": [{"name": "perplexity", "priority": 1}]}])
    assert renamed.key(renamed.config.metrics[0], "model") == key  # names and priorities change no number
    other_data = Evaluator(scorer.config, {}, CPU, tmp_path / "cache", lambda name: "changed")
    assert other_data.key(other_data.config.metrics[0], "model") != key


# ------------------------------------------------------------------ objectives and goals


def test_objectives_follow_priorities_or_the_document_order():
    config = EvaluatorConfig.model_validate({"metrics": [
        {"name": "acc", "type": "accuracy", "data_config": "d", "user_config": {"prompt_template": "{q}", "label_col": "a"},
         "sub_types": [{"name": "accuracy_score", "priority": 2}, {"name": "exact_match"}]},
        {"name": "lat", "type": "latency", "data_config": "d", "sub_types": [{"name": "p90", "priority": 1}]}]})
    assert [(s.name, s.higher_is_better) for s in sub_metrics(config)] == [
        ("acc-accuracy_score", True), ("acc-exact_match", True), ("lat-p90", False)]
    assert [s.name for s in objectives(config)] == ["lat-p90", "acc-accuracy_score"]
    assert [s.name for s in objectives(config, ["acc-exact_match"])] == ["acc-exact_match"]
    no_priorities = EvaluatorConfig.model_validate({"metrics": [{"name": "s", "type": "size_on_disk"},
                                                                {"name": "p", "type": "perplexity", "data_config": "d"}]})
    assert [s.name for s in objectives(no_priorities)] == ["s-bytes", "p-perplexity"]


@pytest.mark.parametrize("goal, higher, threshold, passing, failing", [
    ("threshold", True, 0.8, 0.8, 0.79),
    ("threshold", False, 0.8, 0.8, 0.81),
    ("min-improvement", True, 12, 12, 11.9),
    ("min-improvement", False, 8, 8, 8.1),
    ("max-degradation", True, 8, 8, 7.9),
    ("max-degradation", False, 12, 12, 12.1),
    ("percent-min-improvement", True, 12, 12.5, 11.9),
    ("percent-max-degradation", False, 12, 11, 12.1),
])
def test_goals_become_thresholds_from_the_input_models_value(goal, higher, threshold, passing, failing):
    value = 0.8 if goal == "threshold" else (2 if not goal.startswith("percent") else 20)
    sub = SubMetric("m-s", "m", "s", higher, GoalConfig(type=goal, value=value))
    assert goal_threshold(sub, 10.0) == pytest.approx(threshold)
    assert meets(sub, passing, goal_threshold(sub, 10.0)) and not meets(sub, failing, goal_threshold(sub, 10.0))


def test_relative_goals_need_the_input_model():
    with_goal = EvaluatorConfig.model_validate({"metrics": [{"name": "s", "type": "size_on_disk", "sub_types": [
        {"name": "bytes", "goal": {"type": "percent-min-improvement", "value": 50}}]}]})
    threshold_only = EvaluatorConfig.model_validate({"metrics": [{"name": "s", "type": "size_on_disk", "sub_types": [
        {"name": "bytes", "goal": {"type": "threshold", "value": 1e6}}]}]})
    assert needs_baseline(with_goal) and not needs_baseline(threshold_only)


@pytest.mark.parametrize("metrics, problem", [
    ([{"name": "p", "type": "perplexity", "data_config": "d", "sub_types": [{"name": "perplexty"}]}],
     "sub_types[0].name: a perplexity metric has no sub-metric 'perplexty' (did you mean 'perplexity'?)"),
    ([{"name": "p", "type": "perplexity"}], "data_config: a perplexity metric reads data; name a data_configs entry"),
    ([{"name": "c", "type": "custom", "user_config": {"user_script": "s.py", "evaluate_func": "f"},
       "sub_types": [{"name": "x"}]}],
     "sub_types[0].higher_is_better: a custom metric must say which way is better"),
    ([{"name": "s", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]},
      {"name": "t", "type": "size_on_disk", "sub_types": [{"name": "mb", "priority": 1}]}],
     "t-mb: priority 1 is also given to s-bytes"),
    ([{"name": "s", "type": "size_on_disk"}, {"name": "s", "type": "size_on_disk"}],
     "metrics[1].name: metric name 's' is used twice"),
    ([{"name": "s", "type": "size_on_disk", "sub_types": [{"name": "bytes", "goal": {"type": "max-degradation", "value": -1}}]}],
     "value: a max-degradation goal is a size, so it cannot be negative"),
])
def test_evaluator_mistakes_are_named(metrics, problem):
    """The evaluator's own checks, and each metric's checked as its registered type's config."""
    with pytest.raises(ValidationError, match=re.escape(problem)):
        config = EvaluatorConfig.model_validate({"metrics": metrics})
        for metric in config.metrics:
            typed_metric(metric)


def test_a_metric_naming_missing_data_is_refused_with_its_place(tiny_llama, tmp_path, write_doc, cli):
    doc = builder_workflow(tiny_llama, tmp_path)
    doc["evaluators"] = {"common": {"metrics": [{"name": "ppl", "type": "perplexity", "data_config": "txt"}]}}
    (tmp_path / "x.jsonl").write_text("")
    doc["data_configs"] = [{"name": "text", "load_dataset_config": {"data_name": "json",
                                                                    "data_files": str(tmp_path / "x.jsonl")}}]
    doc["engine"]["evaluator"] = "common"
    path = write_doc(doc)
    code, _, err = cli("run", "--config", path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"data_config": "txt"' in text)
    assert code == 2
    assert err == (f"olivepress: error: {path}:{line}: evaluators.common.metrics[0].data_config: no data config named "
                   "'txt' in 'data_configs' (did you mean 'text'?)\n")


# ---------------------------------------------------------------- Olive's metric shapes

def test_olives_perplexity_is_olivepress_perplexity():
    metric = typed_metric({"name": "ppl", "type": "accuracy", "backend": "torch_metrics", "data_config": "d",
                           "sub_types": [{"name": "perplexity", "metric_config": {"ignore_index": -100}}]})
    assert (metric.type, [sub.name for sub in metric.sub_types]) == ("perplexity", ["perplexity"])
    assert sub_metrics(EvaluatorConfig(metrics=[metric]))[0].higher_is_better is False


def _graph(path: Path, with_past: bool) -> OnnxModel:
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"])]
    nodes = [helper.make_node("Shape", ["attention_mask"], ["mask_shape"])]
    outputs = [helper.make_tensor_value_info("mask_shape", TensorProto.INT64, [2])]
    if with_past:
        inputs.append(helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, ["batch", 2, "past", 4]))
        nodes.append(helper.make_node("Shape", ["past_key_values.0.key"], ["past_shape"]))
        outputs.append(helper.make_tensor_value_info("past_shape", TensorProto.INT64, [4]))
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)])
    path.mkdir()
    onnx.save(model, str(path / "model.onnx"))
    return OnnxModel(path=path)


@pytest.mark.parametrize("with_past, mask, past", [(False, [1, 1], None), (True, [1, 9], [1, 2, 8, 4])])
def test_token_dummy_rows_feed_a_graph_with_or_without_past_inputs(with_past, mask, past, tmp_path):
    from olivepress.evaluation.forward import OnnxRunner, dummy_rows

    runner = OnnxRunner(_graph(tmp_path / "graph", with_past), CPU)
    row = dummy_rows(DataConfig(name="d", type="TransformersTokenDummyDataContainer"))[0]
    answers = runner.session.run(None, runner.feeds(row))
    assert answers[0].tolist() == mask  # without past inputs, the mask covers the current tokens only
    assert (answers[1].tolist() if with_past else None) == past


def test_latency_reads_olives_metric_level_dataloader(tmp_path):
    from olivepress.evaluation.timing import metric_rows

    script = tmp_path / "user.py"
    script.write_text("import numpy as np\n\n\ndef loader(data_dir, batch_size, length, model_framework):\n"
                      "    assert model_framework == 'ONNX'  # Olive's metrics pass it\n"
                      "    return [({'input_ids': np.ones((batch_size, length), dtype=np.int64)}, 0)] * 3\n",
                      encoding="utf-8")
    metric = typed_metric({"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}], "user_config": {
        "user_script": str(script), "dataloader_func": "loader", "batch_size": 2,
        "func_kwargs": {"dataloader_func": {"length": 5}}}})
    assert metric.data_config is None and not metric.reads_data()
    rows = metric_rows(metric.user_config, "ONNX")
    assert len(rows) == 1 and rows[0]["input_ids"].shape == (2, 5)  # Olive times the first batch
    changed = typed_metric({**metric.model_dump(exclude_unset=True), "user_config": {
        **metric.user_config.model_dump(exclude_unset=True), "dataloader_func": "loader"}})
    before = changed.key_material()
    script.write_text(script.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    assert changed.key_material() != before  # the script's content is part of the evaluation key


def test_latency_without_data_times_ones_shaped_as_the_graphs_fixed_inputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from olivepress.evaluation.forward import model_io_rows

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT32, [1, 16]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 16, 16])]
    graph = helper.make_graph([helper.make_node("Shape", ["mask"], ["shape"])], "g", inputs,
                              [helper.make_tensor_value_info("shape", TensorProto.INT64, [4])])
    (tmp_path / "fixed").mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "fixed" / "model.onnx"))
    (row,) = model_io_rows(OnnxModel(path=tmp_path / "fixed"))
    assert {name: (value.shape, str(value.dtype)) for name, value in row.items()} == {
        "input_ids": ((1, 16), "int32"), "mask": ((1, 1, 16, 16), "float32")}
    metric = typed_metric({"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]})
    assert metric.data_config is None and not metric.reads_data()  # Olive times the model's own input shapes
    with pytest.raises(OlivepressError, match=r"^graph input input_ids has no fixed shape to make rows of ones from; name "
                                        r"a data_configs entry, or give user_config input_names and input_shapes$"):
        model_io_rows(_graph(tmp_path / "dynamic", with_past=False))


@pytest.mark.slow
def test_latency_of_a_graph_without_genai_config_times_one_forward_per_dummy_row(tmp_path):
    evaluator = Evaluator(
        EvaluatorConfig(metrics=[{"name": "lat", "type": "latency", "data_config": "dummy",
                                  "sub_types": [{"name": "avg"}, {"name": "max"}],
                                  "user_config": {"repeat_test_num": 5}}]),
        {"dummy": DataConfig(name="dummy", type="TransformersPromptDummyDataContainer")}, CPU, tmp_path / "cache",
        lambda name: "fingerprint")
    model = _graph(tmp_path / "graph", with_past=False)
    values = evaluator.evaluate(model, "model-key").metrics
    assert 0 < values["lat-avg"] <= values["lat-max"] < 1


def test_olives_metric_level_dataloader_of_custom_metrics_is_refused_saying_what_to_write():
    with pytest.raises(ValidationError) as error:
        typed_metric({"name": "c", "type": "custom", "sub_types": [{"name": "acc", "higher_is_better": True}],
                      "user_config": {"user_script": "user.py", "metric_func": "metric", "dataloader_func": "d"}})
    assert ("dataloader_func: Olive 0.2-0.5's metric dataloader is not read; name a data config whose "
            "dataloader_config type is that function (data_config.user_script holds it)") in str(error.value)


def test_a_custom_metric_script_may_live_in_script_dir(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "metric_script.py").write_text("def score(model, data_config, scale):\n    return 2 * scale\n",
                                              encoding="utf-8")
    evaluator = Evaluator(
        EvaluatorConfig(metrics=[{"name": "c", "type": "custom", "sub_types": [{"name": "s", "higher_is_better": True}],
                                  "user_config": {"user_script": "metric_script.py", "script_dir": str(scripts),
                                                  "evaluate_func": "score", "evaluate_func_kwargs": {"scale": 4}}}]),
        {}, CPU, tmp_path / "cache", lambda name: "fingerprint")
    assert evaluator.evaluate(HfModel(path=tmp_path), "key").metrics == {"c-s": 8.0}
