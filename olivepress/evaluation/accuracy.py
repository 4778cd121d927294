"""Accuracy by generation: each row's prompt is answered greedily and the answer compared with the row's label."""

import re

from tqdm import tqdm

from olivepress.config.sections import AccuracyUserConfig, DataConfig
from olivepress.evaluation.generation import Generator

WORD = re.compile(r"\w+(?:['-]\w+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def normalized(text: str) -> str:
    """Lower case, without surrounding spaces and punctuation."""
    return text.strip().strip(".,;:!?\"'`").strip().lower()


def score(answers: list[str], expected: list[str]) -> dict[str, float]:
    """accuracy_score: the answer starts with the label's words; exact_match: the answer is the label."""
    starts = sum(bool(words(label)) and words(answer)[:len(words(label))] == words(label)
                 for answer, label in zip(answers, expected))
    exact = sum(normalized(answer) == normalized(label) for answer, label in zip(answers, expected))
    return {"accuracy_score": starts / len(expected), "exact_match": exact / len(expected)}


def measure(generator: Generator, user: AccuracyUserConfig, data_config: DataConfig) -> dict[str, float]:
    from olivepress.evaluation.data import evaluation_rows, labels, prompts

    rows = evaluation_rows(data_config)
    questions = prompts(data_config, rows, user.prompt_template, generator.tokenizer)
    expected = labels(rows, user.label_col)
    answers = [generator.generate(generator.prompt_ids(question, user.use_chat_template), user.max_new_tokens).text
               for question in tqdm(questions, desc="accuracy", unit="prompt", disable=None, leave=False)]
    return score(answers, expected)
