"""Evaluation results, one JSON file per (model, metric) key under the cache's evaluations/ folder."""

import json
import os
import uuid
from pathlib import Path
from typing import Any


class EvaluationCache:
    def __init__(self, cache_root: Path):
        self.folder = cache_root / "evaluations"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or unreadable: measured again and rewritten

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Written to a temporary file and renamed, so a reader never sees half a record."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(temporary, self.folder / f"{key}.json")
