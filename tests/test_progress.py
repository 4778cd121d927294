"""Progress without a terminal: plain lines on stderr every so often and at the end; the bar on a terminal."""

import logging
import re

import pytest

from olivepress import progress as progress_module
from olivepress.passes.pytorch.training import say_estimate
from olivepress.progress import duration, progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_without_a_terminal_a_line_every_interval_and_at_the_end(clock, capsys):
    with progress(total=10, desc="LoRA", unit="step", every_s=30) as bar:
        for step in range(10):
            clock.now += 12  # a step takes 12 s: lines after steps 3, 6 and 9 (36 s apart), then the end
            bar.note(loss=f"{3 - step / 10:.4f}", **{"tokens/s": "683"})
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "LoRA: step 3/10, 12.0 s/step, loss 2.8000, tokens/s 683, elapsed 36s, ETA 1m24s",
        "LoRA: step 6/10, 12.0 s/step, loss 2.5000, tokens/s 683, elapsed 1m12s, ETA 48s",
        "LoRA: step 9/10, 12.0 s/step, loss 2.2000, tokens/s 683, elapsed 1m48s, ETA 12s",
        "LoRA: step 10/10, 12.0 s/step, loss 2.1000, tokens/s 683, elapsed 2m00s",
    ]


def test_iterating_counts_items_and_reports_fast_rates_per_second(clock, capsys):
    seen = []
    for layer in progress(["a", "b", "c", "d"], desc="awq", unit="layer", every_s=1.5):
        clock.now += 0.5
        seen.append(layer)
    assert seen == ["a", "b", "c", "d"]
    assert capsys.readouterr().err.splitlines() == ["awq: layer 3/4, 2.00 layer/s, elapsed 2s, ETA 0s",
                                                    "awq: layer 4/4, 2.00 layer/s, elapsed 2s"]


def test_a_loop_done_within_the_interval_writes_nothing(clock, capsys):
    for _ in progress(range(5), desc="perplexity", unit="row"):
        clock.now += 1
    assert capsys.readouterr().err == ""


def test_an_unknown_total_a_postfix_text_and_no_repeated_last_line(clock, capsys):
    with progress(desc="olivepress", unit="pass") as bar:
        bar.set_postfix_str("lora")
        clock.now += 90
        bar.update(1)
    assert capsys.readouterr().err == "olivepress: pass 1, 90.0 s/pass, lora, elapsed 1m30s\n"


def test_on_a_terminal_the_bar_is_tqdms(monkeypatch, capsys):
    monkeypatch.setattr(progress_module.sys.stderr, "isatty", lambda: True, raising=False)
    with progress(total=3, desc="perplexity", unit="row") as bar:
        assert bar.bar is not None
        bar.update(3)
    shown = capsys.readouterr().err
    assert re.search(r"\rperplexity: +0%\|.*\| 0/3", shown) and "row 3/3" not in shown  # tqdm's bar, no plain lines


@pytest.mark.parametrize(("seconds", "text"), [(42.4, "42s"), (185, "3m05s"), (4320, "1h12m")])
def test_durations(seconds, text):
    assert duration(seconds) == text


def test_an_estimate_over_an_hour_on_cpu_names_the_flags_that_shorten_it(monkeypatch, caplog, capsys):
    monkeypatch.setattr(logging.getLogger("olivepress"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("olivepress"), "handlers", [])  # a CLI test's handler may hold a closed stream
    with caplog.at_level(logging.WARNING, logger="olivepress"):
        say_estimate("LoRA", 2 * 3600 + 300, on_cpu=True)
        say_estimate("LoRA", 2 * 3600 + 300, on_cpu=False)
        say_estimate("LoRA", 3000, on_cpu=True)
    assert capsys.readouterr().err.splitlines() == ["LoRA: about 2h05m in all at this pace",
                                                    "LoRA: about 2h05m in all at this pace",
                                                    "LoRA: about 50m00s in all at this pace"]
    assert [record.getMessage() for record in caplog.records] == [
        "LoRA: training will take about 2h05m on CPU; shorten it with --max_seq_len, --batch_size or --max_steps "
        "(in a workflow: max_seq_len, per_device_train_batch_size, max_steps)"]
