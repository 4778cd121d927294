"""`olivepress convert-adapters --adapter_path A --output_path X.onnx_adapter`: a PEFT LoRA adapter as
a file that an exported model (auto-opt with an adapter, or ModelBuilder + ExtractAdapters) takes."""

import argparse
import json
from pathlib import Path

from olivepress.cli.common import add_flag
from olivepress.errors import OlivepressError
from olivepress.models.onnx_adapters import (
    ADAPTER_FILE_SUFFIX,
    AttentionSizes,
    check_adapter_fits,
    folder_lora_inputs,
    onnx_adapter_weights,
    peft_lora_config,
    write_adapter_file,
)
from olivepress.models.resolve import hf_model_folder


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
    output: Path = args.output_path
    if output.suffix != ADAPTER_FILE_SUFFIX:
        raise OlivepressError(f"--output_path {output}: the file name must end in {ADAPTER_FILE_SUFFIX}")
    if not output.parent.is_dir():
        raise OlivepressError(f"--output_path {output}: no such folder {output.parent}")
    config = peft_lora_config(args.adapter_path)
    lora_inputs = folder_lora_inputs(args.model) if args.model is not None else {}
    model_dtype = next(iter(lora_inputs.values())).dtype if lora_inputs else None
    weights = onnx_adapter_weights(args.adapter_path, _attention_sizes(args.model, config),
                                   args.dtype or model_dtype or "float32")
    if args.model is not None:
        check_adapter_fits(weights, lora_inputs, f"--adapter_path {args.adapter_path}")
    write_adapter_file(output, weights)
    ranks = sorted({array.shape[1] for name, array in weights.items() if "lora_A" in name})
    parameters = sum(int(array.size) for array in weights.values())
    dtype = next(iter(weights.values())).dtype.name
    print(f"wrote {output}: {len(weights)} weights, {parameters:,} parameters, rank {'/'.join(map(str, ranks))}, {dtype}")
    return 0


def _attention_sizes(model_dir: Path | None, adapter_config: dict) -> AttentionSizes | None:
    """q/k/v sizes to unpack a qkv_proj adapter: from the exported model, else from the adapter's base
    model when that is a local folder (or in the local HF cache); None when neither is at hand."""
    if model_dir is not None:
        return AttentionSizes.from_genai_config(json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8")))
    base = adapter_config.get("base_model_name_or_path")
    try:
        folder = hf_model_folder(base) if base else None
    except OlivepressError:
        return None
    return AttentionSizes.from_hf_config(json.loads((folder / "config.json").read_text(encoding="utf-8"))) if folder else None
