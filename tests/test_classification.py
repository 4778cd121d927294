"""Olive's classification accuracy: the scores against hand counts, the labelled rows Olive's pre-processing makes,
and the metric over a tiny BERT in torch and ONNX Runtime against its own logits."""

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from tiny_models import write_tiny_bert, write_tokenizer

from olivepress.config.data_params import PreProcessParams
from olivepress.config.sections import DataConfig, EvaluatorConfig
from olivepress.data.classification import classification_batches
from olivepress.data.container import HuggingfaceContainer
from olivepress.errors import OlivepressError
from olivepress.evaluation.classification import (
    HuggingfaceOptions,
    TorchMetricsOptions,
    huggingface_metric,
    torch_metric,
)
from olivepress.evaluation.evaluator import Evaluator
from olivepress.evaluation.metrics import typed_metric
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel

CPU = Accelerator("cpu", "CPUExecutionProvider")
BINARY_PREDS, BINARY_TARGETS = np.array([1, 0, 1, 1, 0, 1]), np.array([1, 0, 0, 1, 1, 1])  # tp 3, fp 1, fn 1, tn 1
CLASS_PREDS, CLASS_TARGETS = np.array([0, 1, 2, 2, 1, 0]), np.array([0, 1, 1, 2, 2, 2])
FIRST = ["What's a must-see in Paris?", "Best way to get around Tokyo?", "I'm thrilled to start my new job!",
         "This haunted house is terrifying!", "The train to the coast leaves at noon.", "Missing the concert is sad.",
         "The museum opens later today.", "Take the train, walk, or ride a bike.", "I lost my keys again.",
         "The light on the coast in spring."]
SECOND = ["The Eiffel Tower and the Louvre.", "The tone is joy.", "The tone is fear.", "It leaves late."]
ROWS = [{"sentence1": first, "sentence2": SECOND[n % 4], "label": n % 2} for n, first in enumerate(FIRST)]


def torch_options(**values) -> TorchMetricsOptions:
    return TorchMetricsOptions.model_validate(values)


# ---------------------------------------------------------------- scores against hand counts

@pytest.mark.parametrize("name, expected", [("accuracy_score", 4 / 6), ("precision", 3 / 4), ("recall", 3 / 4),
                                            ("f1_score", 6 / 8)])
def test_binary_scores_are_torchmetrics_counts(name, expected):
    assert torch_metric(name, torch_options(), BINARY_PREDS, None, BINARY_TARGETS) == pytest.approx(expected)


def test_binary_scores_leave_out_ignored_rows_and_truncate_scores_to_labels_as_olive_does():
    preds, targets = np.append(BINARY_PREDS, 0), np.append(BINARY_TARGETS, -100)
    assert torch_metric("accuracy_score", torch_options(), preds, None, targets) == pytest.approx(4 / 6)
    # Olive casts predictions to int before torchmetrics sees them: 0.9 counts as 0
    assert torch_metric("accuracy_score", torch_options(), np.array([0.9, 1.0]), None, np.array([1, 1])) == 0.5


@pytest.mark.parametrize("average, name, expected", [
    (None, "accuracy_score", 3 / 6),  # micro: right rows over all rows
    ("macro", "accuracy_score", (1 + 1 / 2 + 1 / 3) / 3),  # each class's recall, averaged
    ("weighted", "accuracy_score", (1 * 1 + 2 * 1 / 2 + 3 * 1 / 3) / 6),  # weighted by each class's rows
    ("macro", "precision", (1 / 2 + 1 / 2 + 1 / 2) / 3),
    ("macro", "f1_score", (2 / 3 + 2 / 4 + 2 / 5) / 3),
])
def test_multiclass_scores_average_over_classes(average, name, expected):
    opts = torch_options(task="multiclass", num_classes=3, average=average)
    assert torch_metric(name, opts, CLASS_PREDS, None, CLASS_TARGETS) == pytest.approx(expected)


def test_a_class_neither_predicted_nor_present_does_not_count_in_macro():
    opts = torch_options(task="multiclass", num_classes=5, average="macro")
    assert torch_metric("accuracy_score", opts, CLASS_PREDS, None, CLASS_TARGETS) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_labels_outside_the_classes_are_an_error_naming_them():
    with pytest.raises(OlivepressError, match=r"a multiclass task takes labels 0..1, but the predictions or labels "
                                              r"hold 2"):
        torch_metric("accuracy_score", torch_options(task="multiclass", num_classes=2), CLASS_PREDS, None, CLASS_TARGETS)


def test_multilabel_scores_count_every_label():
    preds, targets = np.array([[1, 0], [1, 1], [0, 1]]), np.array([[1, 0], [0, 1], [0, 1]])
    opts = torch_options(task="multilabel", num_labels=2)
    assert torch_metric("accuracy_score", opts, preds, None, targets) == pytest.approx(5 / 6)
    assert torch_metric("f1_score", opts, preds, None, targets) == pytest.approx(6 / 7)
    assert torch_metric("accuracy_score", torch_options(task="multilabel", num_labels=2, average="macro"),
                        preds, None, targets) == pytest.approx((2 / 3 + 1) / 2)


def test_binary_auroc_counts_pairs_with_ties_as_half():
    scores = np.array([0.9, 0.2, 0.6, 0.8, 0.3, 0.6])  # positives .9 .8 .3 .6, negatives .2 .6
    targets = np.array([1, 0, 0, 1, 1, 1])
    assert torch_metric("auroc", torch_options(), None, scores, targets) == pytest.approx(6.5 / 8)
    two_columns = np.stack([np.zeros(6), scores], axis=1)  # softmax's second column orders rows as the scores do
    assert torch_metric("auroc", torch_options(), None, two_columns, targets) == pytest.approx(6.5 / 8)
    assert torch_metric("auroc", torch_options(), None, scores, np.ones(6, dtype=int)) == 0.0  # no negatives


def test_multiclass_auroc_is_one_against_the_rest_per_class():
    scores = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.45, 0.6], [0.3, 0.4, 0.3]])
    targets = np.array([0, 1, 2, 1])  # class 1: .5 .4 against .2 .45 wins 3 of 4 pairs; the others all
    opts = torch_options(task="multiclass", num_classes=3)
    assert torch_metric("auroc", opts, None, scores, targets) == pytest.approx((1 + 3 / 4 + 1) / 3)
    weighted = torch_options(task="multiclass", num_classes=3, average="weighted")
    assert torch_metric("auroc", weighted, None, scores, targets) == pytest.approx((1 + 2 * 3 / 4 + 1) / 4)


def test_huggingface_metrics_are_scikit_learns():
    binary = HuggingfaceOptions()
    assert huggingface_metric("accuracy", binary, BINARY_PREDS, BINARY_TARGETS) == pytest.approx(4 / 6)
    assert huggingface_metric("f1", binary, BINARY_PREDS, BINARY_TARGETS) == pytest.approx(6 / 8)
    macro = HuggingfaceOptions.model_validate({"compute_params": {"average": "macro"}})
    assert huggingface_metric("f1", macro, CLASS_PREDS, CLASS_TARGETS) == pytest.approx((2 / 3 + 2 / 4 + 2 / 5) / 3)
    micro = HuggingfaceOptions.model_validate({"compute_params": {"average": "micro"}})
    assert huggingface_metric("recall", micro, CLASS_PREDS, CLASS_TARGETS) == pytest.approx(3 / 6)
    with pytest.raises(OlivepressError, match=r"^metric_config.compute_params.average: the labels are multiclass "
                                              r"\(3 of them\) but average is 'binary'; choose micro, macro or weighted$"):
        huggingface_metric("f1", binary, CLASS_PREDS, CLASS_TARGETS)


# ---------------------------------------------------------------- the metric as Olive writes it

def test_olives_accuracy_metrics_are_read():
    metric = typed_metric({"name": "acc", "type": "accuracy", "backend": "huggingface_metrics", "data_config": "d",
                           "sub_types": [{"name": "accuracy", "priority": 1, "goal": {"type": "max-degradation",
                                                                                     "value": 0.05}},
                                         {"name": "f1", "metric_config": {"compute_params": {"average": "micro"}}}]})
    assert [sub.name for sub in metric.sub_types] == ["accuracy", "f1"]
    olive = typed_metric({"name": "acc", "type": "accuracy", "data_config": "d", "sub_types": [
        {"name": "accuracy_score", "metric_config": {"task": "multiclass", "num_classes": "100", "top_k": 1}}]})
    assert olive.key_material()["sub_types"] == [["accuracy_score", {"task": "multiclass", "num_classes": "100",
                                                                      "top_k": 1}]]


@pytest.mark.parametrize("metric, message", [
    ({"backend": "huggingface_metrics", "sub_types": [{"name": "accuracy_score"}]},
     "sub_types[0].name: accuracy by the huggingface_metrics backend has no sub-metric 'accuracy_score'; it has "
     "accuracy, f1, precision, recall"),
    ({"sub_types": [{"name": "auroc", "metric_config": {"tsk": "binary"}}]},
     "sub_types[0].metric_config: tsk: "),
    ({"sub_types": [{"name": "f1_score"}], "user_config": {"prompt_template": "{q}", "label_col": "a"}},
     "sub_types[0].name: accuracy by generated answers has no sub-metric 'f1_score'; it has accuracy_score, "
     "exact_match"),
])
def test_mismatched_accuracy_metrics_are_refused_naming_the_key(metric, message):
    with pytest.raises(ValidationError) as error:
        typed_metric({"name": "acc", "type": "accuracy", "data_config": "d", **metric})
    assert message in str(error.value)


def test_metric_func_needs_the_data_it_scores():
    with pytest.raises(ValidationError, match="data_config: a custom metric reads data"):
        typed_metric({"name": "c", "type": "custom", "sub_types": [{"name": "s", "higher_is_better": True}],
                      "user_config": {"user_script": "user.py", "metric_func": "score"}})


# ---------------------------------------------------------------- labelled rows

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from olivepress.models.loading import load_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder)
    return load_tokenizer(folder)


def rows_of(records: list[dict]):
    import datasets

    return datasets.Dataset.from_list(records)


def test_input_columns_are_tokenized_together_with_their_labels(tokenizer):
    params = PreProcessParams.model_validate({"input_cols": ["sentence1", "sentence2"], "max_length": 6,
                                              "padding": "max_length"})
    batches = classification_batches(rows_of(ROWS), params, tokenizer, 4, None)
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    inputs, labels = batches[0]
    assert labels.tolist() == [0, 1, 0, 1]
    assert inputs["input_ids"].shape == (4, 6)
    pair = tokenizer(ROWS[0]["sentence1"], ROWS[0]["sentence2"], truncation=True, max_length=6)["input_ids"]
    assert inputs["input_ids"][0].tolist() == pair


def test_labels_can_be_filtered_by_name_and_aligned_with_the_models(tokenizer):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos", "_silence_"])})
    rows = datasets.Dataset.from_list([{"text": "a", "label": 0}, {"text": "b", "label": 1},
                                       {"text": "c", "label": 2}], features=features)
    params = PreProcessParams.model_validate({"input_cols": ["text"], "labels_to_filter": ["_silence_"],
                                              "align_labels": True})
    (_, labels), = classification_batches(rows, params, tokenizer, 8, {"pos": 0, "neg": 1, "_silence_": 2})
    assert labels.tolist() == [1, 0]  # the model numbers 'pos' 0 and 'neg' 1


@pytest.mark.parametrize("pre_process, message", [
    ({"input_cols": ["sentence"]}, "pre_process_data_config.params: the data has no field 'sentence'; its fields "
                                   "are sentence1, sentence2, label"),
    ({"input_cols": ["sentence1"], "padding": False},
     "pre_process_data_config.params.padding: the batch from row 0 holds rows of different lengths; set padding "
     "(true or 'max_length') or dataloader batch_size 1"),
    ({"input_cols": ["sentence1"], "align_labels": True},
     "pre_process_data_config.params.align_labels: column 'label' holds no label names (a ClassLabel column) to "
     "match with the model's label2id"),
])
def test_unusable_classification_rows_are_refused_in_one_line(tokenizer, pre_process, message):
    rows = rows_of([*ROWS[:3], {"sentence1": "A much longer sentence than the others, with many more words in it.",
                                "sentence2": "x", "label": 0}])
    with pytest.raises(OlivepressError) as error:
        classification_batches(rows, PreProcessParams.model_validate(pre_process), tokenizer, 4, {"a": 0})
    assert str(error.value) == message


def test_a_streamed_split_reads_the_rows_it_uses(tmp_path):
    file = tmp_path / "rows.jsonl"
    file.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    config = DataConfig(name="d", load_dataset_config={"data_name": "json", "data_files": str(file), "streaming": True,
                                                       "trust_remote_code": True},
                        pre_process_data_config={"input_cols": ["sentence1"], "max_samples": 3})
    rows = HuggingfaceContainer(config).records()
    assert [row["sentence1"] for row in rows] == [row["sentence1"] for row in ROWS[:3]]


# ---------------------------------------------------------------- the metric on a model

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", num_labels=2)


def _logits_by_hand(bert: Path, rows: list[dict]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification

    from olivepress.models.loading import load_tokenizer

    tokenizer, model = load_tokenizer(bert), AutoModelForSequenceClassification.from_pretrained(bert).eval()
    with torch.no_grad():
        return np.concatenate([model(**tokenizer(row["sentence1"], row["sentence2"], return_tensors="pt")).logits.numpy()
                               for row in rows])


def _classification_data(tmp_path: Path, **post_process) -> DataConfig:
    file = tmp_path / "mrpc.jsonl"
    file.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return DataConfig(name="mrpc", load_dataset_config={"data_name": "json", "data_files": str(file)},
                      pre_process_data_config={"input_cols": ["sentence1", "sentence2"]},
                      dataloader_config={"batch_size": 3}, **post_process)


def _hand_scores(logits: np.ndarray) -> dict[str, float]:
    labels = np.array([row["label"] for row in ROWS])
    preds = logits.argmax(axis=1)
    assert set(preds.tolist()) == {0, 1}  # the random model tells rows apart, so the scores test something
    tp, fp, fn = int(((preds == 1) & (labels == 1)).sum()), int(((preds == 1) & (labels == 0)).sum()), \
        int(((preds == 0) & (labels == 1)).sum())
    positive = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    pairs = [(p > n) + 0.5 * (p == n) for p in positive[labels == 1] for n in positive[labels == 0]]
    return {"acc-accuracy_score": float((preds == labels).mean()), "acc-f1_score": 2 * tp / (2 * tp + fp + fn),
            "acc-auroc": float(np.mean(pairs))}


@pytest.mark.slow
def test_accuracy_of_a_tiny_bert_in_torch_and_onnx_equals_the_hand_computation(tiny_bert, tmp_path, one_thread):
    from test_onnx_passes import run_pass

    from olivepress.passes.onnx.conversion import OnnxConversion

    metrics = [{"name": "acc", "type": "accuracy", "data_config": "mrpc",
                "sub_types": [{"name": "accuracy_score"}, {"name": "f1_score"}, {"name": "auroc"}]}]
    evaluator = Evaluator(EvaluatorConfig(metrics=metrics), {"mrpc": _classification_data(tmp_path)}, CPU,
                          tmp_path / "cache", lambda name: "fingerprint")
    expected = _hand_scores(_logits_by_hand(tiny_bert, ROWS))
    assert 0 < expected["acc-accuracy_score"] < 1  # the random model is right on some rows only
    torch_values = evaluator.evaluate(HfModel(tiny_bert, task="text-classification"), "torch").metrics
    assert torch_values == pytest.approx(expected, abs=1e-6)
    onnx_model = run_pass(OnnxConversion, HfModel(tiny_bert, task="text-classification"), tmp_path / "onnx")[0]
    assert evaluator.evaluate(onnx_model, "onnx").metrics == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_metric_func_scores_the_post_processed_outputs_of_the_inference_loop(tiny_bert, tmp_path, one_thread):
    script = tmp_path / "user.py"
    script.write_text(
        "import torch\n\n\ndef second_class(output, offset):\n    return (output.logits[:, 1] > offset).long()\n\n\n"
        "def score(model_output, targets, scale):\n"
        "    return {'hits': scale * float((model_output.preds == targets).sum()),\n"
        "            'rows': float(model_output.logits.shape[0])}\n", encoding="utf-8")
    data = _classification_data(tmp_path, user_script=str(script),
                                post_process_data_config={"type": "second_class", "offset": 0.0})
    metrics = [{"name": "mine", "type": "custom", "data_config": "mrpc",
                "sub_types": [{"name": "hits", "higher_is_better": True}, {"name": "rows", "higher_is_better": True}],
                "user_config": {"user_script": str(script), "metric_func": "score", "metric_func_kwargs": {"scale": 2}}}]
    evaluator = Evaluator(EvaluatorConfig(metrics=metrics), {"mrpc": data}, CPU, tmp_path / "cache",
                          lambda name: "fingerprint")
    logits = _logits_by_hand(tiny_bert, ROWS)
    hits = int(((logits[:, 1] > 0).astype(int) == np.array([row["label"] for row in ROWS])).sum())
    values = evaluator.evaluate(HfModel(tiny_bert, task="text-classification"), "torch").metrics
    assert values == {"mine-hits": 2.0 * hits, "mine-rows": 10.0}
