"""What every command shares: flag spellings (Olive's underscore names and dashed forms both work) and
reading a workflow document with every registry."""

import argparse
from pathlib import Path

from olivepress.config.source import SourceDocument
from olivepress.engine.search.driver import strategy_registries
from olivepress.log import DEFAULT_LEVEL
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow, validate_document
from olivepress.workflow.plan import Workflow


def add_flag(parser: argparse._ActionsContainer, name: str, *aliases: str, **kwargs) -> None:
    """Add `--name` (Olive's spelling), its aliases, and the dashed form of each long one, as one option."""
    spellings = []
    for spelling in (f"--{name}", *aliases):
        spellings.append(spelling)
        if spelling.startswith("--") and "_" in spelling:
            spellings.append(spelling.replace("_", "-"))
    parser.add_argument(*spellings, dest=name, **kwargs)


def common_parser() -> argparse.ArgumentParser:
    """Options every command takes."""
    parser = argparse.ArgumentParser(add_help=False)
    add_flag(parser, "log_level", type=int, choices=range(5), default=None,
             help=f"0 verbose (with tracebacks), 1 info, 2 warnings (default: {DEFAULT_LEVEL}), 3 errors, 4 critical")
    return parser


def read_workflow(file: Path) -> Workflow:
    """The document at `file`, checked with the installed passes, samplers and executors."""
    return load_workflow(file, PassRegistry.default(), strategy_registries())


def check_workflow(source: SourceDocument) -> Workflow:
    """A document built in memory (by a task command), checked as `read_workflow` checks a file."""
    return validate_document(source, PassRegistry.default(), strategy_registries())
