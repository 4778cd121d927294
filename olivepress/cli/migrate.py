"""`olivepress migrate --config OLD --output NEW`: write an older Olive document in the current shape."""

import argparse
import json
from pathlib import Path

import yaml

from olivepress import api
from olivepress.cli.common import add_flag
from olivepress.errors import OlivepressError
from olivepress.files import write_atomic


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("migrate", parents=[common], help="rewrite an older Olive document in the current shape")
    add_flag(parser, "config", "-c", required=True, type=Path, help="the document to migrate")
    add_flag(parser, "output", "-o", "--output_path", required=True, type=Path,
             help="where to write the current form (.json, or YAML for any other name)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.output.resolve() == args.config.resolve():
        raise OlivepressError(f"--output {args.output}: that is the document being migrated; write the new form elsewhere")
    workflow = api.load(args.config)  # the migrated document must be valid
    document = workflow.source.data
    text = (json.dumps(document, indent=2) + "\n" if args.output.suffix.lower() == ".json"
            else yaml.safe_dump(document, sort_keys=False))
    write_atomic(args.output, text)
    for line in workflow.rewrite_lines():
        print(f"rewrote {line}")
    print(f"wrote {args.output}")
    return 0
