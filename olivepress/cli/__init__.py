"""The `olivepress` command: one module per subcommand, each with `register(subparsers, common)`."""

import argparse
import logging
import sys
import traceback

from olivepress import __version__
from olivepress.cli import (
    auto_opt,
    cache,
    convert_adapters,
    fetch_model,
    finetune,
    generate,
    migrate,
    passes,
    quantize,
    register,
    run,
    schema,
    validate,
)
from olivepress.cli.common import common_parser
from olivepress.config.errors import DocumentError
from olivepress.errors import OlivepressError, RunFailedError
from olivepress.log import DEFAULT_LEVEL, logger, setup_logging
from olivepress.systems.azureml.client import connect as azureml_connect
from olivepress.systems.azureml.service import Connect

COMMANDS = (run, validate, migrate, finetune, quantize, auto_opt, convert_adapters, schema, passes, cache, fetch_model, generate,
            register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="olivepress", description="Optimize models with declarative workflows.")
    parser.add_argument("--version", action="version", version=f"olivepress {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_parser()
    for command in COMMANDS:
        command.register(subparsers, common)
    return parser


def main(argv: list[str] | None = None, connect: Connect = azureml_connect) -> int:
    """Run one command; `connect` is how it reaches AzureML (tests hand in a double)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passes_unknown_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.unknown_flags = unknown
    args.connect = connect
    setup_logging(DEFAULT_LEVEL if args.log_level is None else args.log_level)
    try:
        return args.handler(args)
    except (OlivepressError, RunFailedError) as error:
        _report(error)
        return error.exit_code
    except KeyboardInterrupt:
        print("olivepress: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an olivepress bug or a library failure outside any pass
        _report(error, unexpected=True)
        return 1


def _report(error: BaseException, unexpected: bool = False) -> None:
    """One line per problem on stderr (a document's first SHOWN_PROBLEMS, then a count of the others; all of them
    with --log_level 0, and the traceback)."""
    verbose = logger.isEnabledFor(logging.DEBUG)
    if verbose:
        traceback.print_exception(error)
    if isinstance(error, DocumentError):
        lines = error.problems if verbose else error.shown()
    else:
        lines = [str(error)]
    if unexpected:
        hint = "" if verbose else " (rerun with --log_level 0 for the traceback)"
        lines = [f"unexpected {type(error).__name__}: {lines[0]}{hint}"]
    for line in lines:
        print(f"olivepress: error: {line}", file=sys.stderr)
