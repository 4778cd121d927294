"""Evaluation results, one JSON file per (model, metric) key under the cache's evaluations/ folder."""

import json
from pathlib import Path
from typing import Any

from olivepress.files import write_atomic


class EvaluationCache:
    def __init__(self, cache_root: Path):
        self.folder = cache_root / "evaluations"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or unreadable: measured again and rewritten

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / f"{key}.json", json.dumps(record, indent=2))
