"""`olivepress auto-opt -m MODEL [--adapter_path A] --precision int4 -o OUT`: export a model for ONNX
Runtime with a pass chain chosen from the model, device, provider and precision (printed first).

Writes OUT/model/: model.onnx (+ external data), and for LLMs genai_config.json, the tokenizer files
and, when the model has an adapter, adapter_weights.onnx_adapter.
"""

import argparse

from olivepress import api
from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.cli.run import print_outcome
from olivepress.engine.auto_opt import AUTO_OPT_PROVIDERS, Chain


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "auto-opt", aliases=["auto_opt"], parents=[common],
        help="export a model (and its LoRA adapter) to ONNX Runtime with an automatically chosen pass chain",
    )
    task.add_model_flags(parser)
    add_flag(parser, "provider", choices=sorted(AUTO_OPT_PROVIDERS), default=None,
             help="the execution provider to build for (default: CPU on cpu, CUDA on gpu)")
    add_flag(parser, "precision", choices=["int4", "int8", "fp16", "fp32"], default="int4", help="default int4")
    add_flag(parser, "use_ort_genai", "--use_model_builder", action="store_true",
             help="require an ONNX Runtime GenAI model (the GenAI builder); chosen anyway for the LLMs it supports")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    print_outcome(api.auto_opt(**task.keywords(args, api.auto_opt), on_chain=print_chain))
    return 0


def print_chain(chain: Chain) -> None:
    print(f"auto-opt: {chain.describe()}")
    for note in chain.notes:
        print(f"  note: {note}")
