"""`olivepress passes`: list every registered pass."""

import argparse

from olivepress.passes.registry import PassRegistry


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("passes", parents=[common], help="list the available passes")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    rows = [(p.name, f"{'/'.join(p.accepts)} -> {p.produces}", p.description) for p in PassRegistry.default()]
    name_width = max(len(row[0]) for row in rows)
    kinds_width = max(len(row[1]) for row in rows)
    for name, kinds, description in rows:
        print(f"{name:<{name_width}}  {kinds:<{kinds_width}}  {description}")
    return 0
