"""Reading and writing the files of an ONNX model folder: the graph, its external data, and the side
files (genai_config.json, tokenizer, adapter files) that travel with it from pass to pass."""

import shutil
from pathlib import Path

from pydantic import Field, field_validator

from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import PassConfig

# Tensors of at least this many bytes go to the external data file; small ones stay in the graph.
EXTERNAL_DATA_THRESHOLD = 1024
PROTOBUF_LIMIT = 2**31  # a graph file cannot be larger; its weights then go outside whatever is asked


class ExternalDataOptions(PassConfig):
    """Olive's external-data parameters, shared by every pass that writes an ONNX graph."""

    save_as_external_data: bool = Field(
        True, description="Write the weights to a data file beside the graph (olivepress's default, as the GenAI "
                          "builder writes models; Olive's default is false). A graph over 2 GB always does."
    )
    all_tensors_to_one_file: bool = Field(
        True, description="With save_as_external_data: all weights in one file (external_data_name), else one "
                          "file per tensor, named after it."
    )
    external_data_name: str | None = Field(
        None, description="With save_as_external_data and all_tensors_to_one_file: the data file's name; "
                          "default <graph file>.data."
    )
    size_threshold: int = Field(
        EXTERNAL_DATA_THRESHOLD, ge=0,
        description="With save_as_external_data: tensors of at least this many bytes go outside; 0 moves all.",
    )
    convert_attribute: bool = Field(
        False, description="With save_as_external_data: move tensors held in node attributes outside too."
    )

    @field_validator("external_data_name")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value or value in (".", "..")):
            raise ValueError("must be a file name, without a folder")
        return value


def onnx_path(model: OnnxModel) -> Path:
    path = model.path / model.onnx_file_name
    if not path.is_file():
        raise OlivepressError(f"{model.path}: no {model.onnx_file_name} in this ONNX model folder")
    return path


def load_onnx(model: OnnxModel, with_weights: bool = True):
    """The model's graph; `with_weights=False` leaves external tensors unread (fast, for inspecting)."""
    import onnx

    return onnx.load(str(onnx_path(model)), load_external_data=with_weights)


def save_onnx(proto, output_dir: Path, file_name: str = "model.onnx",
              options: ExternalDataOptions | None = None) -> Path:
    """Write `proto` as `file_name` in `output_dir`, its weights laid out as `options` say (by default one
    external data file `file_name.data`, as the GenAI builder writes them)."""
    import onnx

    options = options or ExternalDataOptions()
    path = output_dir / file_name
    if not (options.save_as_external_data or _too_large(proto)):
        onnx.save_model(proto, str(path))
        return path
    location = options.external_data_name or f"{file_name}.data"
    # onnx appends to an existing data file; the proto is fully in memory, so the old file can go.
    (output_dir / location).unlink(missing_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=True,
                    all_tensors_to_one_file=options.all_tensors_to_one_file,
                    location=location if options.all_tensors_to_one_file else None,
                    size_threshold=options.size_threshold, convert_attribute=options.convert_attribute)
    return path


def _too_large(proto) -> bool:
    try:
        size = proto.ByteSize()
    except ValueError:  # protobuf refuses to measure a message past its limit
        return True
    return not 0 < size < PROTOBUF_LIMIT


def graph_files(proto, file_name: str) -> set[str]:
    """The file names that hold `proto`: the graph file and every external data file it references."""
    from onnx import TensorProto

    files = {file_name}
    for tensor in _tensors(proto.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            files.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return files


def _tensors(graph):
    """Every tensor of a graph and its subgraphs (initializers and constant attributes)."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            for subgraph in [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]:
                yield from _tensors(subgraph)


def copy_side_files(model: OnnxModel, output_dir: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Copy everything in the model folder except its graph and external data (and `skip`); returns
    the names copied."""
    graph = graph_files(load_onnx(model, with_weights=False), model.onnx_file_name)
    copied = []
    for file in sorted(model.path.iterdir()):
        if file.name in graph or file.name in skip:
            continue
        if file.is_dir():
            shutil.copytree(file, output_dir / file.name)
        else:
            shutil.copy2(file, output_dir / file.name)
        copied.append(file.name)
    return copied
