"""Hashes: canonical digests of values, content fingerprints of files and folders, the library versions
that shape outputs.

File hashes are memoized by (path, size, mtime, inode): an unchanged multi-GB checkpoint is hashed once;
later runs only stat its files.
"""

import hashlib
import importlib.metadata
import json
import os
import sqlite3
import threading
from functools import cache
from pathlib import Path
from typing import Any

# Libraries whose version can change what a pass writes.
SHAPING_LIBRARIES = ("torch", "transformers", "peft", "onnx", "onnxruntime", "onnxruntime-genai")


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in SHAPING_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class FingerprintMemo:
    """File hashes remembered across runs in a small SQLite file."""

    def __init__(self, db_file: Path):
        db_file.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_file, timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                " inode INTEGER, sha256 TEXT)"
            )

    def file_hash(self, path: Path, force: bool = False) -> str:
        """The file's sha256; read from the memo unless the file's stat changed or `force` is set."""
        stat = path.stat()  # taken before reading, so a file changed mid-read is rehashed next time
        if not force:
            stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
            with self._lock:
                row = self._db.execute(
                    "SELECT size, mtime_ns, inode, sha256 FROM files WHERE path = ?", (str(path.resolve()),)
                ).fetchone()
            if row is not None and tuple(row[:3]) == stamp:
                return row[3]
        digest = sha256_file(path)
        self._store(path, stat, digest)
        return digest

    def remember(self, path: Path, digest: str) -> None:
        """Record a hash already known (for example of a file just moved) so that it is not read again."""
        self._store(path, path.stat(), digest)

    def _store(self, path: Path, stat: os.stat_result, digest: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                             (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, digest))

    def folder_hashes(self, folder: Path, force: bool = False) -> dict[str, str]:
        """{relative posix path: sha256} of every file under `folder` (or of `folder` itself if a file)."""
        if folder.is_file():
            return {folder.name: self.file_hash(folder, force)}
        return {rel: self.file_hash(folder / rel, force) for rel in list_files(folder)}

    def fingerprint(self, path: Path) -> str:
        """One sha256 over the relative names and contents of every file under `path`."""
        digest = hashlib.sha256()
        for rel, file_hash in sorted(self.folder_hashes(path).items()):
            digest.update(f"{rel}\0{file_hash}\n".encode())
        return digest.hexdigest()

    def close(self) -> None:
        self._db.close()


def list_files(folder: Path) -> list[str]:
    """Relative posix paths of the files under `folder`, sorted; symlinks to files count as files."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in names:
            full = Path(root) / name
            if full.is_file():
                files.append(full.relative_to(folder).as_posix())
    return sorted(files)
