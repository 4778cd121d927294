"""`olivepress schema`: print the JSON Schema of workflow documents, with every registered pass."""

import argparse
import json
from pathlib import Path

from olivepress.api.workflows import registry_schema
from olivepress.cli.common import add_flag
from olivepress.passes.registry import PassRegistry


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("schema", parents=[common], help="print the workflow document's JSON Schema")
    add_flag(parser, "output", "-o", type=Path, default=None, help="write to this file instead of stdout")
    add_flag(parser, "builtin_only", action="store_true", help="leave out passes from installed plugins")
    parser.set_defaults(handler=main)


def schema_text(registry: PassRegistry, builtin_only: bool = True) -> str:
    """The schema as `olivepress schema` writes it (see `registry_schema`)."""
    return json.dumps(registry_schema(registry, builtin_only), indent=2) + "\n"


def main(args: argparse.Namespace) -> int:
    registry = PassRegistry.builtin() if args.builtin_only else PassRegistry.default()
    text = schema_text(registry, args.builtin_only)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
