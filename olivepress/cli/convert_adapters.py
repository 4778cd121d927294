"""`olivepress convert-adapters --adapter_path A --output_path X.onnx_adapter`: a PEFT LoRA adapter as
a file that an exported model (auto-opt with an adapter, or ModelBuilder + ExtractAdapters) takes."""

import argparse
from pathlib import Path

from olivepress import api
from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.models.onnx_adapters import ADAPTER_FILE_SUFFIX


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "convert-adapters", aliases=["convert_adapters"], parents=[common],
        help="convert a PEFT LoRA adapter into an .onnx_adapter file for an exported model",
    )
    add_flag(parser, "adapter_path", "-a", required=True, type=Path, help="a PEFT LoRA adapter folder")
    add_flag(parser, "output_path", "-o", required=True, type=Path, help=f"the file to write (*{ADAPTER_FILE_SUFFIX})")
    add_flag(parser, "model", "-m", type=Path, default=None,
             help="the exported GenAI model folder (e.g. OUT/model): the file is checked against its LoRA inputs "
             "and takes their dtype")
    add_flag(parser, "dtype", choices=["float32", "float16"], default=None,
             help="element type of the weights (default: the model's, else float32)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    written = api.convert_adapters(**task.keywords(args, api.convert_adapters))
    print(f"wrote {written.path}: {written.weights} weights, {written.parameters:,} parameters, "
          f"rank {'/'.join(map(str, written.ranks))}, {written.dtype}")
    return 0
