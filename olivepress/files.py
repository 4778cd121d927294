"""File names every layer agrees on, and the one way olivepress publishes a file or a folder: write a
temporary sibling, then rename it into place, so that a reader sees the old version or the new one,
never half of one, and an interrupted writer leaves only a hidden leftover."""

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FOOTPRINT_FILE = "footprint.json"  # an output folder's record of the run that wrote it
MODEL_CONFIG_FILE = "model_config.json"  # an output folder's model handle, paths relative to the folder


def write_atomic(path: Path, content: str | bytes | Callable[[Path], None]) -> None:
    """Write `content` (text as UTF-8, bytes, or a function that writes the file it is given) to `path`."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        if isinstance(content, str):
            partial.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            partial.write_bytes(content)
        else:
            content(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def new_folder(parent: Path, prefix: str) -> Path:
    """A fresh, uniquely named folder under `parent`. Not mkdtemp: its folders are private (0700), and a
    rename would carry that onto the published folder."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = parent / f"{prefix}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def replace_folder(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`; a folder already there is moved aside first and
    removed once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(target: Path, staging_parent: Path | None = None, prefix: str | None = None,
                  replace: bool = True) -> Iterator[Path]:
    """A fresh folder to fill (beside `target`, or under `staging_parent`, named `prefix-<random>`),
    published at `target` when the block succeeds and removed when it fails. With `replace` off, a `target`
    that exists before or appears meanwhile raises FileExistsError and is left as it is."""
    if not replace and target.exists():
        raise FileExistsError(f"{target} already exists")
    staging = new_folder(staging_parent or target.parent, prefix or f".{target.name}.staging")
    try:
        yield staging
        if replace:
            replace_folder(staging, target)
        else:
            _rename_to_new(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _rename_to_new(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)
    except OSError as error:
        if target.exists():
            raise FileExistsError(f"{target} appeared while it was being written") from error
        raise


def first_symlink(folder: Path) -> Path | None:
    """The first symlink under `folder` (not followed), or None when it holds none."""
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + names):
            if os.path.islink(os.path.join(root, name)):
                return Path(root, name)
    return None


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """Hard-link the file `source` names at `target` where the file system allows it (no bytes copied), else copy it."""
    try:
        os.link(os.path.realpath(source), target)  # os.link on Linux links a symlink itself, even when told to follow
    except OSError:
        shutil.copy2(source, target)


def copy_folder(source: Path, target: Path, follow_links: bool = True, link_files: bool = False) -> None:
    """Copy the folder `source` to the new folder `target`. Without `follow_links`, nothing is read through a
    symlink: a symlink anywhere in `source` raises ValueError naming it. With `link_files`, files are
    hard-linked where the file system allows."""
    if not follow_links and source.is_symlink():
        raise ValueError(f"{source} is a symlink")
    shutil.copytree(source, target, symlinks=not follow_links, copy_function=link_or_copy if link_files else shutil.copy2)
    link = None if follow_links else first_symlink(target)
    if link is not None:  # checked on the copy, which nobody else writes, so a link that appears mid-copy is caught
        raise ValueError(f"{source / link.relative_to(target)} is a symlink")
