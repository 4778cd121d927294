"""The content-addressed cache of pass outputs.

Layout under the cache root:
    entries/<key>/entry.json   what made the entry, its model handle (paths inside the entry) and its files' hashes
    entries/<key>/model/...    the pass output (any layout the pass chose under its output folder)
    entries/<key>/inputs/...   folders the pass output names but did not write (an input model's), linked or copied in
    staging/<key>-<random>/    a pass at work; published by one atomic rename into entries/
    locks/<key>.lock           one writer per key
    fingerprints.sqlite        memoized file hashes

An entry exists only once complete: a run killed mid-pass leaves at most a staging folder, which
the next writer of that key (or `olivepress cache gc`) removes.

An entry is self-contained: every path it names resolves inside its own folder, and it holds no
symlinks. An entry that breaks this, or whose entry.json is unreadable, of another format or names
another key, is damaged like one whose files changed: it is not used (docs/cache.md).
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

from olivepress.errors import OlivepressError
from olivepress.files import copy_folder, first_symlink, link_or_copy, new_folder, replace_folder
from olivepress.hashing import FingerprintMemo, list_files
from olivepress.log import logger
from olivepress.models.handles import PATH_FIELDS, ModelHandle, handle_from_config

ENTRY_FILE = "entry.json"
ENTRY_FORMAT = 1
ENTRY_PREFIX = "entry:"  # a path relative to the entry folder, the only kind of path an entry names
INPUTS_FOLDER = "inputs"  # where publish puts the folders a pass output names outside its staging folder
MODEL_TYPES = ("HfModel", "OnnxModel", "CompositeModel")


class DamagedEntry(ValueError):
    """An entry that must not be used; the message names the offending file or path."""


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


class CacheReader:
    """The entries under a cache root, checked before use and never written: a shared cache is read
    through one of these, with file hashes memoized in the reading (private) cache's memo."""

    def __init__(self, root: Path, memo: FingerprintMemo):
        self.root = root.resolve()
        self.entries_dir = self.root / "entries"
        self.memo = memo

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry for `key` if it exists and is intact; a damaged one is reported (`_damaged`) and None returned."""
        folder = self.entries_dir / key
        if not os.path.lexists(folder):
            return None
        entry, problems = self._checked(folder, force=False)
        if entry is None or problems:
            self._damaged(folder, problems[0])
            return None
        return entry

    def holds(self, key: str) -> bool:
        """Whether an entry for `key` exists (unchecked: a damaged one is found out when it is looked up)."""
        return os.path.lexists(self.entries_dir / key)

    def entry_folders(self) -> list[Path]:
        """Every entry folder, damaged ones included; hidden leftovers of an interrupted replace are not entries."""
        if not self.entries_dir.is_dir():
            return []
        return [folder for folder in sorted(self.entries_dir.iterdir()) if not folder.name.startswith(".")]

    def entries(self) -> list[CacheEntry]:
        """The entries whose entry.json is sound (their files are not rehashed)."""
        found = []
        for folder in self.entry_folders():
            try:
                found.append(self._load(folder))
            except DamagedEntry as problem:
                logger.warning("cache entry %s is damaged: %s", folder, problem)
        return found

    def verify(self, folder: Path, force: bool = True) -> list[str]:
        """Problems with an entry: its entry.json and the paths it names, then its files (missing, extra,
        resized or changed). `force` rehashes every file."""
        return self._checked(folder, force)[1]

    def _checked(self, folder: Path, force: bool) -> tuple[CacheEntry | None, list[str]]:
        """The entry in `folder` (None when its entry.json or paths are damaged) and its problems, as `verify`."""
        try:
            entry = self._load(folder)
        except DamagedEntry as problem:
            return None, [str(problem)]
        present = set(list_files(folder)) - {ENTRY_FILE}
        problems = [f"missing file {rel}" for rel in sorted(set(entry.files) - present)]
        problems += [f"unexpected file {rel}" for rel in sorted(present - set(entry.files))]
        for rel in sorted(set(entry.files) & present):
            path = folder / rel
            if path.stat().st_size != entry.files[rel]["size"]:
                problems.append(f"{rel} changed size")
            elif self.memo.file_hash(path, force=force) != entry.files[rel]["sha256"]:
                problems.append(f"{rel} changed content")
        return entry, problems

    def _damaged(self, folder: Path, problem: str) -> None:
        logger.warning("cache entry %s is damaged (%s); not using it", folder, problem)

    # -------------------------------------------------------------- reading an entry

    def _load(self, folder: Path) -> CacheEntry:
        """The entry in `folder`, or DamagedEntry naming what is wrong; nothing is read through a symlink."""
        if folder.is_symlink():
            raise DamagedEntry("the entry folder is a symlink")
        link = first_symlink(folder)
        if link is not None:
            raise DamagedEntry(f"{link.relative_to(folder).as_posix()} is a symlink")
        record = _read_record(folder)
        try:
            model = handle_from_config(_decode_paths(record["model"], folder))
            files = {rel: {"size": int(info["size"]), "sha256": str(info["sha256"])} for rel, info in record["files"].items()}
            return CacheEntry(key=record["key"], folder=folder, record=EntryRecord.from_json(record), model=model,
                              files=files, created=str(record["created"]))
        except DamagedEntry:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DamagedEntry(f"{ENTRY_FILE}: {type(error).__name__}: {error}") from error


class Cache(CacheReader):
    """A writable cache; with `shared`, a second cache whose intact entries are used but never written."""

    def __init__(self, root: Path, shared: Path | None = None):
        root = root.resolve()
        self.staging_dir = root / "staging"
        self.locks_dir = root / "locks"
        super().__init__(root, self._open(root))
        self.shared = CacheReader(shared, self.memo) if shared is not None else None

    def _open(self, root: Path) -> FingerprintMemo:
        for folder in (root / "entries", self.staging_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return FingerprintMemo(root / "fingerprints.sqlite")

    def lookup(self, key: str) -> CacheEntry | None:
        """This cache's entry for `key`, else the shared cache's; a damaged entry of this cache is removed."""
        entry = super().lookup(key)
        if entry is None and self.shared is not None:
            return self.shared.lookup(key)
        return entry

    def holds(self, key: str) -> bool:
        return super().holds(key) or (self.shared is not None and self.shared.holds(key))

    def _damaged(self, folder: Path, problem: str) -> None:
        logger.warning("cache entry %s is damaged (%s); rebuilding it", folder, problem)
        self.remove(folder.name)

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
        """Make the staged output self-contained, record its file hashes and move it into place in one rename."""
        model = self._contain(model, staging)
        files: dict[str, dict[str, Any]] = {
            rel: {"size": (staging / rel).stat().st_size, "sha256": self.memo.file_hash(staging / rel)}
            for rel in list_files(staging)
        }
        full_record = {
            "format": ENTRY_FORMAT,
            "key": key,
            **record.as_json(),
            "model": _encode_paths(model.to_config(), staging),
            "files": files,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / ENTRY_FILE).write_text(json.dumps(full_record, indent=2), encoding="utf-8")
        target = self.entries_dir / key
        replace_folder(staging, target)
        for rel, info in files.items():
            self.memo.remember(target / rel, info["sha256"])  # same bytes under a new path: no need to reread
        return self._load(target)

    def _contain(self, model: ModelHandle, staging: Path) -> ModelHandle:
        """`model` with every folder inside `staging`: a folder outside (an input model a pass passes on, another
        entry's) is linked or copied into inputs/<role>, and symlinks the pass wrote are replaced by what they name."""
        folders = {}
        for role, folder in model.folders().items():
            if folder.resolve().is_relative_to(staging.resolve()):
                folders[role] = folder
            else:
                folders[role] = staging / INPUTS_FOLDER / role
                self._import_folder(folder, folders[role])
        _materialize_links(staging)
        return model.with_folders(folders)

    def _import_folder(self, source: Path, target: Path) -> None:
        """Link or copy `source` to `target`, carrying over the memoized hashes so that the copies are not reread."""
        copy_folder(source, target, link_files=True)
        for rel in list_files(target):
            self.memo.remember(target / rel, self.memo.file_hash(source / rel))

    # -------------------------------------------------------------- housekeeping

    def remove(self, key: str) -> None:
        """Move the entry out of entries/ first, so that a crash mid-delete leaves no half entry."""
        folder = self.entries_dir / key
        if os.path.lexists(folder):
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
        self.memo = self._open(self.root)


# ------------------------------------------------------------------ entry.json and the paths it names


def _read_record(folder: Path) -> dict[str, Any]:
    """entry.json of `folder`, checked for its format and for naming the key that is its folder's name."""
    try:
        record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DamagedEntry(f"unreadable {ENTRY_FILE}: {error}") from error
    if not isinstance(record, dict):
        raise DamagedEntry(f"{ENTRY_FILE} is not an object")
    if record.get("format") != ENTRY_FORMAT:
        raise DamagedEntry(f"{ENTRY_FILE} has format {record.get('format')!r}, not {ENTRY_FORMAT}")
    if record.get("key") != folder.name:
        raise DamagedEntry(f"{ENTRY_FILE} names key {record.get('key')!r}, not its folder's")
    if not isinstance(record.get("model"), dict) or record["model"].get("type") not in MODEL_TYPES:
        raise DamagedEntry(f"{ENTRY_FILE}: model is not a {' or '.join(MODEL_TYPES)} handle")
    if not isinstance(record.get("files"), dict):
        raise DamagedEntry(f"{ENTRY_FILE}: files is not an object")
    return record


def _encode_paths(config: dict[str, Any], entry_folder: Path) -> dict[str, Any]:
    """Paths become relative to the entry ('entry:'); `_contain` has put every folder inside it."""
    encoded = dict(config)
    for key in PATH_FIELDS:
        value = config.get(key)
        if value is not None:
            encoded[key] = ENTRY_PREFIX + Path(value).resolve().relative_to(entry_folder.resolve()).as_posix()
    return encoded


def _decode_paths(config: dict[str, Any], entry_folder: Path) -> dict[str, Any]:
    """Absolute paths for the 'entry:' paths of a model config; a path (or a file name the model names inside
    its folder) that is of another kind or resolves outside the entry folder raises DamagedEntry."""
    decoded = dict(config)
    for key in PATH_FIELDS:
        value = config.get(key)
        if value is not None:
            decoded[key] = str(_entry_path(entry_folder, key, value))
    names = {"onnx_file_name": config.get("onnx_file_name")} | {f"adapters.{name}": file for name, file in
                                                                 (config.get("adapters") or {}).items()}
    names |= {f"model_components.{name}": file for name, file in (config.get("model_components") or {}).items()}
    for name, file in names.items():
        if file is not None and not _inside(Path(decoded["model_path"]) / str(file), entry_folder):
            raise DamagedEntry(f"{name} {file!r} resolves outside the entry")
    return decoded


def _entry_path(entry_folder: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.startswith(ENTRY_PREFIX):
        raise DamagedEntry(f"{key} {value!r} is not a path inside the entry")
    path = entry_folder / value.removeprefix(ENTRY_PREFIX)
    if not _inside(path, entry_folder):
        raise DamagedEntry(f"{key} {value!r} resolves outside the entry")
    return path


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies inside `folder` once '..' and symlinks are resolved."""
    return path.resolve().is_relative_to(folder.resolve())


def _materialize_links(folder: Path) -> None:
    """Replace every symlink under `folder` by a link or copy of the file or folder it names."""
    while (link := first_symlink(folder)) is not None:
        target = link.resolve()
        if not target.exists():
            raise OlivepressError(f"{link}: the pass output holds a symlink to {target}, which does not exist")
        link.unlink()
        if target.is_dir():
            copy_folder(target, link, link_files=True)
        else:
            link_or_copy(target, link)
