"""`olivepress cache ls|verify|gc|clean`: look after the content-addressed cache."""

import argparse
from pathlib import Path

from olivepress.cli.common import add_flag
from olivepress.config.sections import EngineConfig
from olivepress.engine.cache import Cache

DEFAULT_CACHE_DIR = EngineConfig.model_fields["cache_dir"].default


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("cache", parents=[common], help="list, verify, collect or empty the cache")
    parser.add_argument("action", choices=["ls", "verify", "gc", "clean"])
    add_flag(parser, "cache_dir", type=Path, default=Path(DEFAULT_CACHE_DIR), help=f"default: {DEFAULT_CACHE_DIR}")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    cache = Cache(args.cache_dir)
    return {"ls": _ls, "verify": _verify, "gc": _gc, "clean": _clean}[args.action](cache)


def _ls(cache: Cache) -> int:
    for entry in cache.entries():
        record = entry.record
        print(f"{entry.key[:12]}  {record.pass_name:<20} {entry.size_bytes / 1e6:9.1f} MB  {entry.created}"
              f"  from {record.input_key[:12]}")
    return 0


def _verify(cache: Cache) -> int:
    """Check every entry (its entry.json, the paths it names, a rehash of its files); exit 1 if any is damaged
    (and remove it)."""
    intact = damaged = 0
    for folder in cache.entry_folders():
        problems = cache.verify(folder, force=True)
        if problems:
            damaged += 1
            print(f"{folder.name[:12]}  damaged: {'; '.join(problems)}  (removed)")
            cache.remove(folder.name)
        else:
            intact += 1
    print(f"{intact} entries intact, {damaged} damaged")
    return 1 if damaged else 0


def _gc(cache: Cache) -> int:
    removed = cache.gc()
    print(f"removed {len(removed)} leftover staging folder(s)")
    return 0


def _clean(cache: Cache) -> int:
    cache.clean()
    print(f"emptied {cache.root}")
    return 0
