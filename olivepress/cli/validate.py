"""`olivepress validate --config FILE`: check a workflow document and list the rewrites of older Olive shapes."""

import argparse
from pathlib import Path

from olivepress import api
from olivepress.cli.common import add_flag


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("validate", parents=[common],
                                   help="check a workflow document (older Olive shapes are rewritten and listed)")
    add_flag(parser, "config", "-c", required=True, type=Path, help="the workflow document")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    workflow = api.load(args.config)
    rewrites = workflow.rewrite_lines()
    for line in rewrites:
        print(f"rewrote {line}")
    passes = ", ".join(f"{step.name} ({step.pass_class.name})" for step in workflow.steps) or "none"
    print(f"{args.config}: valid, {len(rewrites)} rewrite{'' if len(rewrites) == 1 else 's'}; passes: {passes}")
    return 0
