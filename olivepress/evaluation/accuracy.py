"""Accuracy, in two ways. With user_config.prompt_template: each row's prompt is answered greedily and the answer
compared with the row's label. Otherwise Olive's classification accuracy: the model run over the data's labelled
batches (evaluation.inference), its post-processed predictions scored by the metric's backend
(evaluation.classification)."""

import re
from typing import Any, ClassVar

from pydantic import Field, model_validator

from olivepress.config.sections import DataConfig, MetricConfig, MetricKind, SubMetricConfig
from olivepress.evaluation.classification import (
    HF_METRICS,
    TORCH_METRICS,
    HuggingfaceOptions,
    huggingface_metric,
    options,
    torch_metric,
)
from olivepress.evaluation.forward import onnx_settings, unread_settings
from olivepress.evaluation.generation import GenerationUserConfig
from olivepress.evaluation.metrics import MeasureContext
from olivepress.log import logger
from olivepress.models.handles import ModelHandle
from olivepress.progress import progress
from olivepress.user_code import load_script, script_digest

GENERATED = ("accuracy_score", "exact_match")


class AccuracyUserConfig(GenerationUserConfig):
    label_col: str | None = Field(None, description="With prompt_template: the field that holds the expected "
                                  "answer, e.g. 'tone'.")
    max_new_tokens: int = Field(8, gt=0, description="Tokens generated per prompt (greedy); the answer is what they spell.")
    user_script: str | None = Field(None, description="Classification: the Python file holding post_processing_func.")
    script_dir: str | None = Field(None, description="A folder put on sys.path while user_script runs.")
    post_processing_func: str | None = Field(
        None, description="Classification: a function of user_script called with each batch's model output, "
        "returning the predictions; default the data config's post-processing."
    )
    inference_settings: dict[str, Any] | None = Field(
        None, description="Olive's inference settings by framework; an ONNX model's session takes those under onnx "
        "(execution_provider, provider_options, session_options). Others are accepted with a warning."
    )
    io_bind: bool = Field(False, description="Olive's ONNX Runtime I/O binding; accepted, not read.")
    shared_kv_buffer: bool = Field(False, description="Olive's one buffer for the past and present key/values under "
                                   "io_bind (Olive 0.6+); olivepress feeds host arrays, so true is accepted with a "
                                   "warning.")

    @model_validator(mode="after")
    def _label_with_prompts(self) -> "AccuracyUserConfig":
        if self.prompt_template is not None and self.label_col is None:
            raise ValueError("label_col: accuracy with a prompt_template compares answers with the labels in label_col")
        if self.post_processing_func is not None and self.user_script is None:
            raise ValueError("post_processing_func names a function: give user_script, the file that holds it")
        return self


class AccuracyMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(
        tuple(dict.fromkeys((*GENERATED, *TORCH_METRICS, *HF_METRICS))), "accuracy_score", True, True)
    description: ClassVar[str] = ("Olive's classification accuracy over model outputs, or generated answers compared "
                                  "with the labels (user_config.prompt_template).")
    user_config: AccuracyUserConfig = Field(default_factory=AccuracyUserConfig)

    @model_validator(mode="after")
    def _sub_types_of_the_backend(self) -> "AccuracyMetricConfig":
        generates = self.user_config.prompt_template is not None
        backend = self.backend or "torch_metrics"
        known = GENERATED if generates else HF_METRICS if backend == "huggingface_metrics" else TORCH_METRICS
        what = "generated answers" if generates else f"the {backend} backend"
        for index, sub in enumerate(self.sub_types or []):
            if sub.name not in known:
                raise ValueError(f"sub_types[{index}].name: accuracy by {what} has no sub-metric '{sub.name}'; it has "
                                 f"{', '.join(known)}")
            if generates and sub.metric_config:
                raise ValueError(f"sub_types[{index}].metric_config: accuracy by generated answers takes none")
            try:
                options(backend, sub.metric_config)
            except ValueError as error:
                raise ValueError(f"sub_types[{index}].metric_config: {_first_line(error)}") from None
        if not self.sub_types and backend == "huggingface_metrics":
            raise ValueError("sub_types: name the huggingface_metrics sub-metrics (accuracy, f1, precision, recall)")
        return self

    def key_material(self) -> dict[str, Any]:
        """Classification: the backend, each sub-metric's options, and the post-processing script's content."""
        user = self.user_config
        if user.prompt_template is not None:
            return {}
        script = script_digest(user.user_script, user.script_dir, "user_config.user_script") if user.user_script else None
        return {"backend": self.backend or "torch_metrics", "script": script,
                "sub_types": [[sub.name, sub.metric_config] for sub in self.sub_types]}


def _first_line(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(error)


WORD = re.compile(r"\w+(?:['-]\w+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def normalized(text: str) -> str:
    """Lower case, without surrounding spaces and punctuation."""
    return text.strip().strip(".,;:!?\"'`").strip().lower()


def score(answers: list[str], expected: list[str]) -> dict[str, float]:
    """accuracy_score: the answer starts with the label's words; exact_match: the answer is the label."""
    starts = sum(bool(words(label)) and words(answer)[:len(words(label))] == words(label)
                 for answer, label in zip(answers, expected, strict=True))
    exact = sum(normalized(answer) == normalized(label) for answer, label in zip(answers, expected, strict=True))
    return {"accuracy_score": starts / len(expected), "exact_match": exact / len(expected)}


def measure(metric: AccuracyMetricConfig, model: ModelHandle, data_config: DataConfig,
            context: MeasureContext) -> dict[str, float]:
    if metric.user_config.prompt_template is None:
        return measure_classification(metric, model, data_config, context)
    from olivepress.evaluation.data import evaluation_rows, labels, prompts

    generator, user = context.generator(), metric.user_config
    assert user.label_col is not None  # the user config's validator demands it with a prompt_template
    rows = evaluation_rows(data_config)
    questions = prompts(data_config, rows, user.prompt_template, generator.tokenizer)
    expected = labels(rows, user.label_col)
    answers = [generator.generate(generator.prompt_ids(question, user.use_chat_template), user.max_new_tokens).text
               for question in progress(questions, desc="accuracy", unit="prompt")]
    return score(answers, expected)


def measure_classification(metric: AccuracyMetricConfig, model: ModelHandle, data_config: DataConfig,
                           context: MeasureContext) -> dict[str, float]:
    from olivepress.evaluation.inference import run_inference

    user = metric.user_config
    unread = unread_settings(user.inference_settings, user.io_bind, model, user.shared_kv_buffer)
    if unread:
        logger.warning("metric %s: user_config %s accepted from the Olive document but not used by olivepress",
                       metric.name, ", ".join(unread))
    post = None
    if user.post_processing_func is not None and user.user_script is not None:
        post = load_script(user.user_script, user.script_dir, "user_config.user_script").function(
            user.post_processing_func, "user_config.post_processing_func")
    output, targets = run_inference(model, data_config, context.accelerator, post,
                                    onnx_settings(user.inference_settings))
    preds, logits, labels = output.preds.numpy(), output.logits, targets.numpy()
    backend = metric.backend or "torch_metrics"
    values = {}
    for sub in metric.sub_types or [SubMetricConfig(name="accuracy_score")]:
        opts = options(backend, sub.metric_config)
        if isinstance(opts, HuggingfaceOptions):
            values[sub.name] = huggingface_metric(sub.name, opts, preds, labels)
        else:
            numbers = logits.numpy() if hasattr(logits, "numpy") else logits
            values[sub.name] = torch_metric(sub.name, opts, preds, numbers, labels)
    return values
