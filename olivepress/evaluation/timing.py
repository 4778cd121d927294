"""Latency (seconds per request) and throughput (generated tokens per second) of exactly max_new_tokens tokens."""

from tqdm import tqdm

from olivepress.config.sections import DataConfig, TimingUserConfig
from olivepress.evaluation.generation import Generator, percentiles


def measure(kind: str, generator: Generator, user: TimingUserConfig, data_config: DataConfig) -> dict[str, float]:
    """`kind` is latency or throughput. Prompts cycle through the data's rows; warm-up runs are not timed."""
    from olivepress.evaluation.data import evaluation_rows, prompts

    rows = evaluation_rows(data_config)
    ids = [generator.prompt_ids(text, user.use_chat_template)
           for text in prompts(data_config, rows, user.prompt_template, generator.tokenizer)]
    for number in range(user.warmup_num):
        generator.generate(ids[number % len(ids)], user.max_new_tokens, exact=True)
    runs = [generator.generate(ids[number % len(ids)], user.max_new_tokens, exact=True)
            for number in tqdm(range(user.repeat_test_num), desc=kind, unit="request", disable=None, leave=False)]
    if kind == "latency":
        return percentiles([run.seconds for run in runs])
    total = sum(run.new_tokens for run in runs) / sum(run.seconds for run in runs)
    return percentiles([run.new_tokens / run.seconds for run in runs], average=total)
