"""The content-addressed cache of pass outputs.

Layout under the cache root:
    entries/<key>/entry.json   what made the entry, its model handle (relative paths) and its files' hashes
    entries/<key>/model/...    the pass output (any layout the pass chose under its output folder)
    staging/<key>-<random>/    a pass at work; published by one atomic rename into entries/
    locks/<key>.lock           one writer per key
    fingerprints.sqlite        memoized file hashes

An entry exists only once complete: a run killed mid-pass leaves at most a staging folder, which
the next writer of that key (or `olivepress cache gc`) removes.
"""

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from olivepress.files import new_folder, replace_folder
from olivepress.hashing import FingerprintMemo, list_files
from olivepress.log import logger
from olivepress.models.handles import PATH_FIELDS, ModelHandle, handle_from_config

ENTRY_FILE = "entry.json"
ENTRY_FORMAT = 1


@dataclass(frozen=True)
class EntryRecord:
    """What made an entry: the pass, its input and resolved config, and where and how it ran."""

    pass_name: str
    pass_version: str
    input_key: str
    config: dict[str, Any]
    accelerator: dict[str, str]
    system: dict[str, Any]  # the system that ran the pass (System.describe())
    libraries: dict[str, str | None]
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)  # what the pass reported (e.g. train_loss)

    def as_json(self) -> dict[str, Any]:
        fields = asdict(self)
        return {"pass": fields.pop("pass_name"), **fields}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EntryRecord":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "pass_name"]
        return cls(pass_name=data["pass"], **{name: data[name] for name in names if name in data})


@dataclass(frozen=True)
class CacheEntry:
    key: str
    folder: Path
    record: EntryRecord
    model: ModelHandle
    files: dict[str, dict[str, Any]]  # {relative path: {"size", "sha256"}}
    created: str

    @property
    def size_bytes(self) -> int:
        return sum(info["size"] for info in self.files.values())


class Cache:
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.entries_dir = self.root / "entries"
        self.staging_dir = self.root / "staging"
        self.locks_dir = self.root / "locks"
        self.memo = self._open()

    def _open(self) -> FingerprintMemo:
        for folder in (self.entries_dir, self.staging_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return FingerprintMemo(self.root / "fingerprints.sqlite")

    # -------------------------------------------------------------- writing

    @contextmanager
    def writer(self, key: str) -> Iterator[None]:
        """Hold the key's lock; leftovers of earlier, killed writers of this key are removed first."""
        lock = FileLock(self.locks_dir / f"{key}.lock")
        with lock:
            for leftover in self.staging_dir.glob(f"{key}-*"):
                logger.info("removing an interrupted run's leftovers: %s", leftover.name)
                shutil.rmtree(leftover, ignore_errors=True)
            yield

    def new_staging(self, key: str) -> Path:
        return new_folder(self.staging_dir, key)

    def discard_staging(self, folder: Path) -> None:
        """Remove a staging folder if it is still there (after a publish it has been renamed away)."""
        shutil.rmtree(folder, ignore_errors=True)

    def publish(self, key: str, staging: Path, model: ModelHandle, record: EntryRecord) -> CacheEntry:
        """Record the staged output's file hashes and move it into place in one rename."""
        files: dict[str, dict[str, Any]] = {
            rel: {"size": (staging / rel).stat().st_size, "sha256": self.memo.file_hash(staging / rel)}
            for rel in list_files(staging)
        }
        full_record = {
            "format": ENTRY_FORMAT,
            "key": key,
            **record.as_json(),
            "model": self._encode_paths(model.to_config(), staging),
            "files": files,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / ENTRY_FILE).write_text(json.dumps(full_record, indent=2), encoding="utf-8")
        target = self.entries_dir / key
        replace_folder(staging, target)
        for rel, info in files.items():
            self.memo.remember(target / rel, info["sha256"])  # same bytes under a new path: no need to reread
        return self._load(target)

    # -------------------------------------------------------------- reading

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry for `key` if it exists and is intact; a damaged entry is removed and None returned."""
        folder = self.entries_dir / key
        if not (folder / ENTRY_FILE).is_file():
            return None
        problems = self.verify(folder, force=False)
        if problems:
            logger.warning("cache entry %s is damaged (%s); rebuilding it", key[:12], problems[0])
            self.remove(key)
            return None
        return self._load(folder)

    def entries(self) -> list[CacheEntry]:
        found = []
        for folder in sorted(self.entries_dir.iterdir()):
            try:
                found.append(self._load(folder))
            except (OSError, ValueError, KeyError):
                logger.warning("unreadable cache entry: %s", folder.name)
        return found

    def verify(self, folder: Path, force: bool = True) -> list[str]:
        """Problems with an entry's files: missing, extra, resized or changed. `force` rehashes every file."""
        try:
            record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
            expected = record["files"]
        except (OSError, ValueError, KeyError) as error:
            return [f"unreadable {ENTRY_FILE}: {error}"]
        present = set(list_files(folder)) - {ENTRY_FILE}
        problems = [f"missing file {rel}" for rel in sorted(set(expected) - present)]
        problems += [f"unexpected file {rel}" for rel in sorted(present - set(expected))]
        for rel in sorted(set(expected) & present):
            path = folder / rel
            if path.stat().st_size != expected[rel]["size"]:
                problems.append(f"{rel} changed size")
            elif self.memo.file_hash(path, force=force) != expected[rel]["sha256"]:
                problems.append(f"{rel} changed content")
        return problems

    # -------------------------------------------------------------- housekeeping

    def remove(self, key: str) -> None:
        """Move the entry out of entries/ first, so that a crash mid-delete leaves no half entry."""
        folder = self.entries_dir / key
        if folder.exists():
            trash = self.staging_dir / f"{key}-removed-{uuid.uuid4().hex[:8]}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def gc(self) -> list[str]:
        """Remove staging leftovers whose writer is gone; returns what was removed."""
        removed = []
        for leftover in sorted(self.staging_dir.iterdir()):
            key = leftover.name.split("-", 1)[0]
            lock = FileLock(self.locks_dir / f"{key}.lock")
            try:
                with lock.acquire(timeout=0):
                    shutil.rmtree(leftover, ignore_errors=True)
                    removed.append(leftover.name)
            except Timeout:
                continue  # a live writer owns it
        return removed

    def clean(self) -> None:
        self.memo.close()
        shutil.rmtree(self.root, ignore_errors=True)
        self.memo = self._open()

    # -------------------------------------------------------------- paths

    def _load(self, folder: Path) -> CacheEntry:
        record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
        model = handle_from_config(self._decode_paths(record["model"], folder))
        return CacheEntry(key=record["key"], folder=folder, record=EntryRecord.from_json(record), model=model,
                          files=record["files"], created=record["created"])

    def _encode_paths(self, config: dict[str, Any], entry_folder: Path) -> dict[str, Any]:
        """Paths become relative: to the entry ('entry:'), to the cache root ('cache:'), or stay absolute."""
        encoded = dict(config)
        for key in PATH_FIELDS:
            value = config.get(key)
            if value is None:
                continue
            path = Path(value).resolve()
            if path.is_relative_to(entry_folder.resolve()):
                encoded[key] = "entry:" + path.relative_to(entry_folder.resolve()).as_posix()
            elif path.is_relative_to(self.entries_dir):
                encoded[key] = "cache:" + path.relative_to(self.root).as_posix()
            else:
                encoded[key] = str(path)
        return encoded

    def _decode_paths(self, config: dict[str, Any], entry_folder: Path) -> dict[str, Any]:
        decoded = dict(config)
        for key in PATH_FIELDS:
            value = config.get(key)
            if isinstance(value, str) and value.startswith("entry:"):
                decoded[key] = str(entry_folder / value.removeprefix("entry:"))
            elif isinstance(value, str) and value.startswith("cache:"):
                decoded[key] = str(self.root / value.removeprefix("cache:"))
        return decoded
