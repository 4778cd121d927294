"""Reading and writing the files of an ONNX model folder: the graph, its external data, and the side
files (genai_config.json, tokenizer, adapter files) that travel with it from pass to pass."""

import shutil
from pathlib import Path

from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel

# Tensors above this many bytes go to the external data file; small ones stay in the graph.
EXTERNAL_DATA_THRESHOLD = 1024


def onnx_path(model: OnnxModel) -> Path:
    path = model.path / model.onnx_file_name
    if not path.is_file():
        raise OlivepressError(f"{model.path}: no {model.onnx_file_name} in this ONNX model folder")
    return path


def load_onnx(model: OnnxModel, with_weights: bool = True):
    """The model's graph; `with_weights=False` leaves external tensors unread (fast, for inspecting)."""
    import onnx

    return onnx.load(str(onnx_path(model)), load_external_data=with_weights)


def save_onnx(proto, output_dir: Path, file_name: str = "model.onnx") -> Path:
    """Write `proto` as `file_name` plus one external data file `file_name.data` (a graph over 2 GB
    cannot be one protobuf, so weights always go outside, as the GenAI builder writes them)."""
    import onnx

    path = output_dir / file_name
    # onnx appends to an existing data file; the proto is fully in memory, so the old file can go.
    (output_dir / f"{file_name}.data").unlink(missing_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{file_name}.data", size_threshold=EXTERNAL_DATA_THRESHOLD)
    return path


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
