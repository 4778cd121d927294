"""AddOliveMetadata: a graph name and Olive's metadata entries written into an ONNX model, its weights untouched."""

import importlib.metadata
import json
import shutil
from pathlib import Path

from pydantic import Field

from olivepress.hashing import digest, sha256_file
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.onnx.model_files import copy_side_files, graph_files, load_onnx


class AddOliveMetadataConfig(PassConfig):
    graph_name: str = Field(min_length=1, description="The name given to the ONNX graph.")
    custom_metadata: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Further metadata entries (values written as text)."
    )
    add_optimization_info: bool = Field(
        True, description="Also record the quantization_config of the config.json beside the graph, when it has one."
    )


class AddOliveMetadata(Pass[OnnxModel, AddOliveMetadataConfig]):
    """The entries: custom_metadata, olivepress_version, model_hash (SHA-256 of the graph and its weight files before
    the metadata went in), hf_model_name (config.json's _name_or_path) and, with add_optimization_info, the
    checkpoint's quantization_config. Existing entries of the same key are replaced."""

    name = "AddOliveMetadata"
    description = "Name the ONNX graph and write Olive's metadata entries (version, model hash, source model) into it."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = AddOliveMetadataConfig

    def run(self, model: OnnxModel, config: AddOliveMetadataConfig, context: PassContext) -> OnnxModel:
        import onnx

        proto = load_onnx(model, with_weights=False)
        files = sorted(graph_files(proto, model.onnx_file_name))
        entries = {entry.key: entry.value for entry in proto.metadata_props}
        entries |= metadata_entries(model.path, files, config)
        onnx.helper.set_model_props(proto, entries)
        proto.graph.name = config.graph_name
        onnx.save_model(proto, str(context.output_dir / model.onnx_file_name))
        for name in files:
            if name != model.onnx_file_name:  # the weights are written once, unchanged
                shutil.copy2(model.path / name, context.output_dir / name)
        copy_side_files(model, context.output_dir)
        context.metrics["metadata_entries"] = len(entries)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def metadata_entries(folder: Path, files: list[str], config: AddOliveMetadataConfig) -> dict[str, str]:
    entries = {str(key): str(value) for key, value in config.custom_metadata.items()}
    entries["olivepress_version"] = importlib.metadata.version("olivepress")
    entries["model_hash"] = digest({name: sha256_file(folder / name) for name in files})
    hf_config_file = folder / "config.json"
    hf_config = json.loads(hf_config_file.read_text(encoding="utf-8")) if hf_config_file.is_file() else {}
    if isinstance(hf_config.get("_name_or_path"), str) and hf_config["_name_or_path"]:
        entries["hf_model_name"] = hf_config["_name_or_path"]
    if config.add_optimization_info and hf_config.get("quantization_config"):
        entries["quantization_config"] = json.dumps(hf_config["quantization_config"], sort_keys=True)
    return entries
