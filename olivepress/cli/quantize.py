"""`olivepress quantize -m MODEL --algorithm awq|gptq|rtn -o OUT`: weight-only int4 quantization in torch.

Writes OUT/model/, a Hugging Face folder with packed int4 weights that the GenAI builder ingests and
that olivepress loads back into torch. Calibration data comes from the data flags, or from the seed
text shipped with olivepress when none is given.
"""

import argparse

from olivepress import api
from olivepress.api.tasks import PRECISION_BITS, QUANTIZE_PASS_TYPES
from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.cli.run import print_outcome
from olivepress.passes.pytorch.quantize import QuantizeConfig

DEFAULT_GROUP_SIZE = QuantizeConfig.model_fields["group_size"].default


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("quantize", parents=[common], help="quantize a Hugging Face model to int4 (AWQ, GPTQ, RTN)")
    task.add_model_flags(parser)
    add_flag(parser, "algorithm", "-a", choices=sorted(QUANTIZE_PASS_TYPES), default="awq", help="default awq")
    add_flag(parser, "precision", choices=sorted(PRECISION_BITS), default="int4", help="default int4")
    add_flag(parser, "group_size", type=int, default=None,
             help=f"weights per scale (default {DEFAULT_GROUP_SIZE}; a divisor is chosen when it does not fit)")
    add_flag(parser, "num_samples", type=int, default=None, help="calibration rows")
    add_flag(parser, "seq_len", type=int, default=None, help="tokens per calibration row")
    add_flag(parser, "float_lm_head", action="store_true",
             help="keep the LM head (and an input embedding tied to it) float; by default they are quantized too")
    task.add_data_flags(parser, required=False)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    print_outcome(api.quantize(**task.keywords(args, api.quantize)))
    return 0
