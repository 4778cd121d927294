"""`olivepress auto-opt -m MODEL [--adapter_path A] --precision int4 -o OUT`: export a model for ONNX
Runtime with a pass chain chosen from the model, device, provider and precision (printed first).

Writes OUT/model/: model.onnx (+ external data), and for LLMs genai_config.json, the tokenizer files
and, when the model has an adapter, adapter_weights.onnx_adapter.
"""

import argparse

from olivepress.cli import task
from olivepress.cli.common import add_flag
from olivepress.config.sections import HfModelConfig
from olivepress.engine.auto_opt import (
    AUTO_OPT_PROVIDERS,
    choose_chain,
    choose_provider,
)
from olivepress.models.azureml_assets import AssetStore
from olivepress.models.default_model import olivepress_home
from olivepress.models.handles import HfModel
from olivepress.models.resolve import resolve_input_model
from olivepress.systems.azureml.client import asset_connect


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
    provider = choose_provider(args.device, args.provider)
    input_model = task.input_model_section(args)
    assets = AssetStore(olivepress_home() / "azureml", asset_connect(None, args.connect))  # an azureml: model, read once
    model = resolve_input_model(HfModelConfig(**input_model), assets=assets)
    assert isinstance(model, HfModel)  # an HfModel section resolves to one
    chain = choose_chain(model, provider, args.precision, args.use_ort_genai)
    print(f"auto-opt: {chain.describe()}")
    for note in chain.notes:
        print(f"  note: {note}")
    document = {
        "input_model": input_model,
        "systems": {"local": {"type": "LocalSystem",
                              "accelerators": [{"device": args.device, "execution_providers": [provider]}]}},
        "passes": {step.name: step.entry() for step in chain.steps},
    }
    task.run_document(document, args, "auto-opt")
    return 0
