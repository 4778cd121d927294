"""`olivepress generate --model DIR --prompt TEXT`: stream an answer from a GenAI model."""

import argparse
import sys
from pathlib import Path

from olivepress import api
from olivepress.cli.common import add_flag
from olivepress.errors import OlivepressError


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("generate", parents=[common], help="generate text with an ONNX Runtime GenAI model")
    add_flag(parser, "model", "-m", "--model_name_or_path", required=True, type=Path,
             help="a GenAI model folder (e.g. OUTPUT/model)")
    add_flag(parser, "prompt", "-p", required=True, help="the user message")
    add_flag(parser, "adapter", action="append", default=[], metavar="NAME=FILE",
             help="load an .onnx_adapter file under a name; repeatable")
    add_flag(parser, "use", default=None, metavar="NAME", help="the adapter to activate for this request")
    add_flag(parser, "max_length", type=int, default=256, help="prompt plus answer, in tokens (default 256)")
    add_flag(parser, "do_sample", action="store_true", help="sample instead of greedy decoding")
    add_flag(parser, "temperature", type=float, default=1.0)
    add_flag(parser, "top_p", type=float, default=1.0)
    add_flag(parser, "top_k", type=int, default=50)
    add_flag(parser, "repetition_penalty", type=float, default=1.0)
    add_flag(parser, "no_chat_template", action="store_true", help="send the prompt as is")
    parser.set_defaults(handler=main)


def parse_adapters(values: list[str]) -> dict[str, Path]:
    adapters = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name or not file:
            raise OlivepressError(f"--adapter {value}: expected NAME=FILE")
        if name in adapters:
            raise OlivepressError(f"--adapter {value}: the name '{name}' is given twice")
        adapters[name] = Path(file)
    return adapters


def main(args: argparse.Namespace) -> int:
    pieces = api.generate(args.model, args.prompt, adapters=parse_adapters(args.adapter), use=args.use,
                          max_length=args.max_length, do_sample=args.do_sample, temperature=args.temperature,
                          top_p=args.top_p, top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                          use_chat_template=not args.no_chat_template)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
