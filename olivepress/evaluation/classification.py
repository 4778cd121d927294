"""Olive's classification sub-metrics over predictions and labels, computed with numpy the way its backends do:
torch_metrics (torchmetrics' Accuracy, F1Score, Precision, Recall, AUROC) and huggingface_metrics (evaluate's
accuracy, f1, precision, recall, which are scikit-learn's)."""

from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field

from olivepress.config.base import ConfigModel
from olivepress.errors import OlivepressError

TORCH_METRICS = ("accuracy_score", "f1_score", "precision", "recall", "auroc")
HF_METRICS = ("accuracy", "f1", "precision", "recall")
Average = Literal["micro", "macro", "weighted"]


class TorchMetricsOptions(ConfigModel):
    """A torch_metrics sub-metric's metric_config (torchmetrics' arguments, with Olive's defaults)."""

    model_config = ConfigModel.model_config | ConfigDict(extra="forbid")

    task: Literal["binary", "multiclass", "multilabel"] = Field("binary", description="What the labels are.")
    num_classes: int | None = Field(None, gt=1, description="multiclass: the number of classes.")
    num_labels: int | None = Field(None, gt=0, description="multilabel: the number of labels per row.")
    threshold: float = Field(0.5, description="Accepted as Olive writes it; Olive casts the predictions to integers "
                             "before torchmetrics sees them, so it has no effect.")
    average: Average | None = Field(None, description="Over classes or labels: default micro (auroc: macro).")
    top_k: Literal[1] = Field(1, description="Only the top prediction counts.")
    ignore_index: int | None = Field(-100, description="Rows (or labels) whose target is this value are left out.")
    multidim_average: Literal["global"] = Field("global", description="Accepted as Olive writes it.")
    validate_args: bool = Field(True, description="Accepted as Olive writes it.")
    thresholds: None = Field(None, description="auroc: exact (no binning), as torchmetrics' default.")


class HuggingfaceComputeParams(ConfigModel):
    model_config = ConfigModel.model_config | ConfigDict(extra="forbid")

    average: Literal["binary", "micro", "macro", "weighted"] = Field(
        "binary", description="f1, precision, recall: binary scores pos_label; the others average over labels.")
    pos_label: int = Field(1, description="The positive label of binary scores.")


class HuggingfaceOptions(ConfigModel):
    """A huggingface_metrics sub-metric's metric_config."""

    model_config = ConfigModel.model_config | ConfigDict(extra="forbid")

    load_params: dict[str, Any] = Field(default_factory=dict, description="Must be empty: the metrics are built in.")
    compute_params: HuggingfaceComputeParams = Field(default_factory=HuggingfaceComputeParams,
                                                     description="Arguments of compute().")
    result_key: str | None = Field(None, description="The key of the result; default the metric's name.")


def options(backend: str, metric_config: dict[str, Any]) -> TorchMetricsOptions | HuggingfaceOptions:
    """The sub-metric's metric_config, validated for its backend."""
    if backend == "huggingface_metrics":
        return HuggingfaceOptions.model_validate(metric_config)
    return TorchMetricsOptions.model_validate(metric_config)


def _safe(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator), dtype=float),
                     where=np.asarray(denominator) != 0)


# ---------------------------------------------------------------- torch_metrics


def torch_metric(name: str, opts: TorchMetricsOptions, preds: np.ndarray, logits: Any, targets: np.ndarray) -> float:
    """torchmetrics' value of `name`. Olive casts the predictions to int first, so scores and thresholds play no
    part in accuracy_score, f1_score, precision and recall; auroc reads the raw outputs (logits)."""
    if name == "auroc":
        return _auroc(opts, _float_outputs(logits), np.asarray(targets).astype(np.int64))
    tp, fp, fn, tn = _stat_scores(opts, np.asarray(preds).astype(np.int64), np.asarray(targets).astype(np.int64))
    average = "micro" if opts.task == "binary" else opts.average or "micro"
    if average == "micro":
        tp, fp, fn, tn = (value.sum() for value in (tp, fp, fn, tn))
    if name == "accuracy_score":
        score = _safe(tp, tp + fn) if opts.task == "multiclass" else _safe(tp + tn, tp + tn + fp + fn)
    elif name == "precision":
        score = _safe(tp, tp + fp)
    elif name == "recall":
        score = _safe(tp, tp + fn)
    else:
        score = _safe(2 * tp, 2 * tp + fp + fn)
    if average == "micro":
        return float(score)
    weights = (tp + fn).astype(float) if average == "weighted" else np.ones_like(score)
    if average == "macro" and opts.task == "multiclass":
        weights[tp + fp + fn == 0] = 0.0  # a class neither predicted nor present does not count
    return float(_safe(np.sum(weights * score), np.sum(weights)))


def _stat_scores(opts: TorchMetricsOptions, preds: np.ndarray, targets: np.ndarray):
    """True/false positives/negatives: scalars (binary), per class (multiclass) or per label (multilabel)."""
    if opts.task == "multilabel":
        if opts.num_labels is None:
            raise OlivepressError("metric_config.num_labels: a multilabel task needs num_labels")
        _same_shape(preds, targets, (len(targets), opts.num_labels))
        keep = targets != opts.ignore_index
        hits = lambda p, t: ((preds == p) & (targets == t) & keep).sum(axis=0)  # noqa: E731
        return hits(1, 1), hits(1, 0), hits(0, 1), hits(0, 0)
    preds, targets = preds.reshape(-1), targets.reshape(-1)
    _same_shape(preds, targets, targets.shape)
    keep = targets != opts.ignore_index
    preds, targets = preds[keep], targets[keep]
    classes = np.arange(2) if opts.task == "binary" else np.arange(_num_classes(opts))
    outside = sorted(set(np.unique(np.concatenate([preds, targets]))) - set(classes.tolist()))
    if outside:
        raise OlivepressError(f"metric_config: a {opts.task} task takes labels {classes[0]}..{classes[-1]}, "
                              f"but the predictions or labels hold {outside[0]}")
    predicted, actual = preds[:, None] == classes, targets[:, None] == classes
    tp, fp, fn = (predicted & actual).sum(0), (predicted & ~actual).sum(0), (~predicted & actual).sum(0)
    tn = len(targets) - tp - fp - fn
    if opts.task == "binary":
        return tp[1:], fp[1:], fn[1:], tn[1:]
    return tp, fp, fn, tn


def _num_classes(opts: TorchMetricsOptions) -> int:
    if opts.num_classes is None:
        raise OlivepressError("metric_config.num_classes: a multiclass task needs num_classes")
    return opts.num_classes


def _same_shape(preds: np.ndarray, targets: np.ndarray, shape: tuple[int, ...]) -> None:
    if preds.shape != targets.shape or targets.shape != tuple(shape):
        raise OlivepressError(f"the post-processed predictions have shape {list(preds.shape)} and the labels "
                              f"{list(targets.shape)}; they must both be {list(shape)}")


def _float_outputs(logits: Any) -> np.ndarray:
    if isinstance(logits, dict):
        raise OlivepressError("auroc reads the model's one output (logits); this model returns several: "
                              f"{', '.join(logits)}")
    return np.asarray(logits, dtype=np.float64)


def _auroc(opts: TorchMetricsOptions, scores: np.ndarray, targets: np.ndarray) -> float:
    if opts.task == "binary":
        if scores.ndim > 1 and scores.shape[-1] == 2:
            scores = _softmax(scores)[:, 1]  # Olive: the positive class's probability
        scores, targets = scores.reshape(-1), targets.reshape(-1)
        _same_shape(scores, targets, targets.shape)
        keep = targets != opts.ignore_index
        return _binary_auc(scores[keep], targets[keep] == 1)
    if opts.task == "multiclass":
        _same_shape(scores, np.zeros((len(targets), _num_classes(opts))), (len(targets), _num_classes(opts)))
        targets = targets.reshape(-1)
        keep = targets != opts.ignore_index
        scores, targets = scores[keep], targets[keep]
        probabilities = scores if ((scores >= 0) & (scores <= 1)).all() else _softmax(scores)
        positives = targets[:, None] == np.arange(probabilities.shape[1])
    else:
        if opts.num_labels is None:
            raise OlivepressError("metric_config.num_labels: a multilabel task needs num_labels")
        _same_shape(scores, targets, (len(targets), opts.num_labels))
        probabilities, positives = scores, targets == 1
        if opts.average == "micro":
            keep = targets != opts.ignore_index
            return _binary_auc(probabilities[keep], positives[keep])
    per_class = np.array([_binary_auc(probabilities[:, c], positives[:, c]) for c in range(probabilities.shape[1])])
    if opts.average == "weighted":
        return float(_safe(np.sum(per_class * positives.sum(0)), positives.sum()))
    return float(per_class.mean())


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve (ties counted half): the Mann-Whitney U over positives times negatives.
    With no positive or no negative row it is 0, as torchmetrics gives it (with a warning)."""
    count, negatives = int(positive.sum()), int((~positive).sum())
    if count == 0 or negatives == 0:
        return 0.0
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties share their average rank
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * negatives))


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- huggingface_metrics


def huggingface_metric(name: str, opts: HuggingfaceOptions, preds: np.ndarray, targets: np.ndarray) -> float:
    """evaluate's `name` (scikit-learn's accuracy_score, f1_score, precision_score, recall_score)."""
    if opts.load_params:
        raise OlivepressError(f"metric_config.load_params: olivepress computes '{name}' itself and takes no load "
                              f"parameters (got {', '.join(opts.load_params)})")
    if opts.result_key not in (None, name):
        raise OlivepressError(f"metric_config.result_key: '{name}' gives one number, under '{name}', not "
                              f"'{opts.result_key}'")
    preds, targets = np.asarray(preds).reshape(len(preds), -1), np.asarray(targets).reshape(len(targets), -1)
    if preds.shape[1] != 1 or targets.shape[1] != 1:
        raise OlivepressError(f"'{name}' compares one label per row, but the post-processed predictions have shape "
                              f"{list(preds.shape)}; post-process the outputs into labels")
    preds, targets = preds[:, 0], targets[:, 0]
    if name == "accuracy":
        return float(np.mean(preds == targets))
    params = opts.compute_params
    labels = np.unique(np.concatenate([preds, targets]))
    if params.average == "binary":
        if len(labels) > 2:
            raise OlivepressError(f"metric_config.compute_params.average: the labels are multiclass ({len(labels)} "
                                  "of them) but average is 'binary'; choose micro, macro or weighted")
        labels = np.array([params.pos_label])
    predicted, actual = preds[:, None] == labels, targets[:, None] == labels
    tp, fp, fn = (predicted & actual).sum(0), (predicted & ~actual).sum(0), (~predicted & actual).sum(0)
    if params.average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    score = {"precision": _safe(tp, tp + fp), "recall": _safe(tp, tp + fn), "f1": _safe(2 * tp, 2 * tp + fp + fn)}[name]
    if params.average == "weighted":
        return float(_safe(np.sum(score * (tp + fn)), np.sum(tp + fn)))
    return float(np.mean(score))
