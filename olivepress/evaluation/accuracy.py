"""Accuracy by generation: each row's prompt is answered greedily and the answer compared with the row's label."""

import re
from typing import ClassVar

from pydantic import Field
from tqdm import tqdm

from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.evaluation.generation import GenerationUserConfig
from olivepress.evaluation.metrics import MeasureContext
from olivepress.models.handles import ModelHandle


class AccuracyUserConfig(GenerationUserConfig):
    prompt_template: str = Field(description="Each row's prompt, with {field} replaced by the row's field, e.g. "
                                 "'Is the tone of this phrase joy, surprise, fear or sadness? {phrase}'.")
    label_col: str = Field(description="The field that holds the expected answer, e.g. 'tone'.")
    max_new_tokens: int = Field(8, gt=0, description="Tokens generated per prompt (greedy); the answer is what they spell.")


class AccuracyMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(("accuracy_score", "exact_match"), "accuracy_score", True, True)
    description: ClassVar[str] = "Generated answers compared with the labels."
    user_config: AccuracyUserConfig

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
    from olivepress.evaluation.data import evaluation_rows, labels, prompts

    generator, user = context.generator(), metric.user_config
    rows = evaluation_rows(data_config)
    questions = prompts(data_config, rows, user.prompt_template, generator.tokenizer)
    expected = labels(rows, user.label_col)
    answers = [generator.generate(generator.prompt_ids(question, user.use_chat_template), user.max_new_tokens).text
               for question in tqdm(questions, desc="accuracy", unit="prompt", disable=None, leave=False)]
    return score(answers, expected)
