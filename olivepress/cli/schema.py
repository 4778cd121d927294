"""`olivepress schema`: print the JSON Schema of workflow documents, with every registered pass."""

import argparse
import json
from pathlib import Path

from olivepress.cli.common import add_flag
from olivepress.config.schema import workflow_schema
from olivepress.engine.search.executors import BUILTIN_EXECUTORS, executors
from olivepress.engine.search.samplers import BUILTIN_SAMPLERS, samplers
from olivepress.evaluation.metrics import builtin_metrics, metric_types
from olivepress.passes.registry import PassRegistry


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("schema", parents=[common], help="print the workflow document's JSON Schema")
    add_flag(parser, "output", "-o", type=Path, default=None, help="write to this file instead of stdout")
    add_flag(parser, "builtin_only", action="store_true", help="leave out passes from installed plugins")
    parser.set_defaults(handler=main)


def schema_text(registry: PassRegistry, builtin_only: bool = True) -> str:
    """The schema with `registry`'s passes and the built-in (or also the installed plugins') metric types,
    samplers and executors."""
    if builtin_only:
        metrics = builtin_metrics()
        sampler_names, executor_names = [n for n, _ in BUILTIN_SAMPLERS], [n for n, _ in BUILTIN_EXECUTORS]
    else:
        metrics, sampler_names, executor_names = metric_types(), samplers().names(), executors().names()
    schema = workflow_schema(registry, [(name, t.config) for name, t in metrics.items()], sampler_names, executor_names)
    return json.dumps(schema, indent=2) + "\n"


def main(args: argparse.Namespace) -> int:
    registry = PassRegistry.builtin() if args.builtin_only else PassRegistry.default()
    text = schema_text(registry, args.builtin_only)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
