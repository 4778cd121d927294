"""What every command shares: flag spellings (Olive's underscore names and dashed forms both work)."""

import argparse

from olivepress.log import DEFAULT_LEVEL


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
