"""Progress of long loops, with or without a terminal.

On a terminal, tqdm's bar (cleared when done). Without one (CI, an AzureML job log, `nohup`), a plain line on
stderr every `REPORT_EVERY_S` seconds, and one at the end of a loop that wrote any: count/total, rate, the
caller's notes (loss, tokens/s), elapsed time and ETA. A loop done within the interval writes nothing, as the bar
leaves nothing. Every progress display in olivepress comes from `progress()`.
"""

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

from tqdm import tqdm

REPORT_EVERY_S = 30.0

T = TypeVar("T")


@overload
def progress(iterable: Iterable[T], total: float | None = None, desc: str = "", unit: str = "it",
             every_s: float | None = None) -> "Progress[T]": ...
@overload
def progress(iterable: None = None, total: float | None = None, desc: str = "", unit: str = "it",
             every_s: float | None = None) -> "Progress[Any]": ...
def progress(iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = "", unit: str = "it",
             every_s: float | None = None) -> "Progress[Any]":
    """A counter over `iterable` (or updated by hand) of `total` items (None or infinite: unknown); a line at most
    every `every_s` seconds without a terminal (default REPORT_EVERY_S)."""
    return Progress(iterable, total, desc, unit, REPORT_EVERY_S if every_s is None else every_s)


def say(line: str) -> None:
    """One line on stderr, between the bar's refreshes on a terminal."""
    tqdm.write(line, file=sys.stderr)


def duration(seconds: float) -> str:
    """'42s', '3m05s', '1h12m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress(Generic[T]):
    """A tqdm-like counter: update(), note(), set_postfix_str(), iteration, `with`."""

    def __init__(self, iterable: Iterable[T] | None, total: float | None, desc: str, unit: str, every_s: float):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        total = int(total) if total is not None and math.isfinite(total) else None
        self.iterable, self.total, self.desc, self.unit, self.every_s = iterable, total, desc, unit, every_s
        self.n = 0
        self.reported: int | None = None  # the count of the last line written
        self.notes: dict[str, Any] = {}
        self.text = ""
        self.started = self.last_line = time.monotonic()
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False) if sys.stderr.isatty() else None
        self.closed = False

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "iterating a progress made without an iterable"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress[T]":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last_line >= self.every_s:
            self._line()

    def note(self, **notes: Any) -> None:
        """Add or replace values shown after the count (loss, tokens/s)."""
        self.notes.update(notes)
        if self.bar is not None:
            self.bar.set_postfix(self.notes, refresh=False)

    def set_postfix_str(self, text: str) -> None:
        self.text = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.reported is not None and self.n != self.reported:
            self._line()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"{self.unit} {self.n}/{self.total}" if self.total else f"{self.unit} {self.n}"]
        if self.n and elapsed > 0:
            rate = self.n / elapsed
            parts.append(f"{rate:.2f} {self.unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{self.unit}")
        parts += [self.text] if self.text else []
        parts += [f"{name} {value}" for name, value in self.notes.items()]
        parts.append(f"elapsed {duration(elapsed)}")
        if self.n and self.total and self.n < self.total:
            parts.append(f"ETA {duration(elapsed / self.n * (self.total - self.n))}")
        return f"{self.desc}: {', '.join(parts)}"

    def _line(self) -> None:
        self.last_line, self.reported = time.monotonic(), self.n
        say(self.line())
