"""The one naming contract between exported graphs and LoRA adapter files.

A projection with LoRA is exported as the GenAI builder writes it (its `adapter_path` option):

    x -> /model/layers.N/attn/q_proj/MatMul ------------------------------+-> /model/layers.N/attn/q_proj/lora/Add
    x -> /model/layers.N/attn/q_proj/lora_A/MatMul -> .../lora_B/MatMul --+

with the weights `model.layers.N.attn.q_proj.lora_A.MatMul.weight` ([in, rank], PEFT's A transposed)
and `model.layers.N.attn.q_proj.lora_B.MatMul.weight` ([rank, out], B transposed and multiplied by
the adapter's scaling). An adapter file (`.onnx_adapter`) holds exactly such named tensors, and
every name in it is an overridable input of the graph. Packed PEFT modules (Phi-3's `qkv_proj` and
`gate_up_proj`) are unpacked into q/k/v and gate/up, as the builder unpacks them.
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from olivepress.errors import OlivepressError
from olivepress.files import write_atomic

if TYPE_CHECKING:
    import numpy as np

ADAPTER_FILE_SUFFIX = ".onnx_adapter"
DEFAULT_ADAPTER_FILE = "adapter_weights.onnx_adapter"

_GRAPH_WEIGHT = re.compile(r"^model\.layers\.(\d+)\.(attn|mlp)\.(\w+)\.lora_([AB])\.MatMul\.weight$")
_LORA_NODE = re.compile(r"/lora_[AB]/")
_PEFT_WEIGHT = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")

# PEFT module -> the exported projections it becomes, in the order its output rows are packed.
_PACKED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
_EXPORTED = {
    "attn": {"q_proj", "k_proj", "v_proj", "o_proj"},
    "mlp": {"gate_proj", "up_proj", "down_proj"},
}
_BLOCKS = {"self_attn": "attn", "mlp": "mlp"}


@dataclass(frozen=True, order=True)
class LoraTarget:
    """One exported projection that carries LoRA."""

    layer: int
    block: str  # attn | mlp
    projection: str  # q_proj, ..., down_proj

    @property
    def module(self) -> str:
        return f"{self.block}.{self.projection}"

    @property
    def _path(self) -> str:
        return f"/model/layers.{self.layer}/{self.block}/{self.projection}"

    @property
    def projection_outputs(self) -> tuple[str, str]:
        """The output of the projection's own node: a MatMul (float, or int4 quantized by the builder)
        or a MatMulNBits (a pre-quantized AWQ/GPTQ weight)."""
        return f"{self._path}/MatMul/output_0", f"{self._path}/MatMulNBits/output_0"

    def lora_node(self, which: str) -> str:
        return f"{self._path}/lora_{which}/MatMul"

    @property
    def add_node(self) -> str:
        return f"{self._path}/lora/Add"

    @property
    def rank_dim(self) -> str:
        """The symbolic name of this projection's rank axis (each adapter may choose its own rank)."""
        return f"model.layers.{self.layer}.{self.block}.{self.projection}.lora_rank"

    def weight_name(self, which: str) -> str:
        return f"model.layers.{self.layer}.{self.block}.{self.projection}.lora_{which}.MatMul.weight"


def is_lora_node(name: str) -> bool:
    """A node of a LoRA branch (its A or B MatMul)."""
    return _LORA_NODE.search(name) is not None


def target_of_weight(name: str) -> tuple[LoraTarget, str] | None:
    """(target, 'A' or 'B') for a graph weight name of the contract; None for any other name."""
    match = _GRAPH_WEIGHT.match(name)
    if match is None:
        return None
    layer, block, projection, which = match.groups()
    return LoraTarget(int(layer), block, projection), which


def lora_weight_target(name: str) -> tuple[LoraTarget, str]:
    """`target_of_weight` of a name already known to be a LoRA weight of the contract."""
    found = target_of_weight(name)
    if found is None:
        raise ValueError(f"{name} is not a LoRA weight name")
    return found


@dataclass(frozen=True)
class AttentionSizes:
    """Output rows of q and of k (= v) inside a packed qkv_proj."""

    q_size: int
    kv_size: int

    @classmethod
    def from_hf_config(cls, config: dict) -> "AttentionSizes":
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        return cls(heads * head_dim, (config.get("num_key_value_heads") or heads) * head_dim)

    @classmethod
    def from_genai_config(cls, config: dict) -> "AttentionSizes":
        decoder = config["model"]["decoder"]
        return cls(decoder["num_attention_heads"] * decoder["head_size"],
                   decoder["num_key_value_heads"] * decoder["head_size"])


def peft_lora_config(adapter_dir: Path) -> dict:
    """The adapter's adapter_config.json, refusing what a swappable LoRA input cannot express."""
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise OlivepressError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise OlivepressError(f"{adapter_dir}: a {config.get('peft_type')} adapter; only LoRA adapters can be exported")
    if config.get("use_dora"):
        raise OlivepressError(f"{adapter_dir}: a DoRA adapter cannot be a swappable ONNX adapter; "
                              "merge it with MergeAdapterWeights")
    if config.get("bias", "none") != "none":
        raise OlivepressError(f"{adapter_dir}: LoRA with bias='{config['bias']}' cannot be exported; train with bias='none'")
    if config.get("modules_to_save"):
        raise OlivepressError(
            f"{adapter_dir}: the adapter also trains {config['modules_to_save']} (modules_to_save), which an adapter "
            "file cannot swap; merge it with MergeAdapterWeights"
        )
    return config


def peft_targets(adapter_dir: Path) -> list[LoraTarget]:
    """The exported projections an adapter's weights land on (after unpacking qkv/gate_up)."""
    peft_lora_config(adapter_dir)
    return sorted(LoraTarget(layer, block, projection)
                  for layer, block, module in _pairs(adapter_dir, _load_state(adapter_dir))
                  for projection in _PACKED.get(module, (module,)))


def onnx_adapter_weights(adapter_dir: Path, sizes: AttentionSizes | None, dtype: str = "float32") -> dict[str, "np.ndarray"]:
    """A PEFT LoRA adapter as {graph input name: numpy array}, laid out as the exported graph takes them."""
    import numpy as np
    import torch

    config = peft_lora_config(adapter_dir)
    arrays: dict[str, np.ndarray] = {}
    for (layer, block, module), pair in sorted(_pairs(adapter_dir, _load_state(adapter_dir)).items()):
        lora_a, lora_b = pair["A"].float(), pair["B"].float()
        lora_b = lora_b * _scaling(config, f"model.layers.{layer}.{_peft_block(block)}.{module}", lora_a.shape[0])
        parts = [(module, lora_b)]
        if module in _PACKED:
            split = _packed_rows(adapter_dir, module, lora_b.shape[0], sizes)
            if sum(split) != lora_b.shape[0]:
                raise OlivepressError(
                    f"{adapter_dir}: {module} of layer {layer} has {lora_b.shape[0]} output rows, but the model packs {split}"
                )
            parts = list(zip(_PACKED[module], torch.split(lora_b, split, dim=0), strict=True))
        for projection, part_b in parts:
            target = LoraTarget(layer, block, projection)
            arrays[target.weight_name("A")] = lora_a.T.contiguous().numpy().astype(dtype)
            arrays[target.weight_name("B")] = part_b.T.contiguous().numpy().astype(dtype)
    return arrays


def _packed_rows(adapter_dir: Path, module: str, rows: int, sizes: AttentionSizes | None) -> list[int]:
    if module == "gate_up_proj":
        return [rows // 2, rows - rows // 2]
    if sizes is None:
        raise OlivepressError(f"{adapter_dir}: the adapter trains the packed qkv_proj; the model's attention sizes "
                              "are needed to split it (give the exported model)")
    return [sizes.q_size, sizes.kv_size, sizes.kv_size]


def _pairs(adapter_dir: Path, state: dict) -> dict[tuple[int, str, str], dict]:
    pairs: dict[tuple[int, str, str], dict] = {}
    for key, tensor in state.items():
        match = _PEFT_WEIGHT.match(key)
        if match is None:
            raise OlivepressError(
                f"{adapter_dir}: cannot export the adapter weight '{key}': only LoRA on the attention and MLP "
                "projections of decoder layers becomes ONNX adapter inputs"
            )
        layer, peft_block, module, which = match.groups()
        block = _BLOCKS[peft_block]
        if module not in _PACKED and module not in _EXPORTED[block]:
            raise OlivepressError(f"{adapter_dir}: LoRA on {peft_block}.{module} cannot be exported; supported: "
                                  f"{', '.join(sorted(_EXPORTED[block] | set(_PACKED)))}")
        pairs.setdefault((int(layer), block, module), {})[which] = tensor
    for (layer, block, module), pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise OlivepressError(f"{adapter_dir}: layer {layer} {block}.{module} has lora_{''.join(pair)} but not both A and B")
    return pairs


def _load_state(adapter_dir: Path) -> dict:
    import torch
    from safetensors.torch import load_file

    if (adapter_dir / "adapter_model.safetensors").is_file():
        return load_file(str(adapter_dir / "adapter_model.safetensors"))
    if (adapter_dir / "adapter_model.bin").is_file():
        return torch.load(adapter_dir / "adapter_model.bin", weights_only=True)
    raise OlivepressError(f"{adapter_dir}: no adapter_model.safetensors in the adapter folder")


def _peft_block(block: str) -> str:
    return "self_attn" if block == "attn" else block


def _scaling(config: dict, module_path: str, rank: int) -> float:
    """PEFT's scaling of one module: alpha / rank (alpha / sqrt(rank) with rsLoRA), patterns included."""
    alpha = _by_pattern(config.get("alpha_pattern") or {}, module_path, config.get("lora_alpha", 8))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _by_pattern(patterns: dict, module_path: str, default):
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            return value
    return default


# ---- adapter files ----------------------------------------------------------------------------

def write_adapter_file(path: Path, weights: dict[str, "np.ndarray"]) -> None:
    """Write {name: numpy array} as an .onnx_adapter file, atomically."""
    import numpy as np
    import onnxruntime as ort

    arrays = {name: np.ascontiguousarray(array) for name, array in weights.items()}
    # OrtValue.ortvalue_from_numpy borrows the array's memory: `arrays` must outlive export_adapter.
    values = {name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in arrays.items()}
    adapter = ort.AdapterFormat()
    adapter.set_adapter_version(1)
    adapter.set_model_version(1)
    adapter.set_parameters(values)
    write_atomic(path, lambda partial: adapter.export_adapter(str(partial)))


def read_adapter_file(path: Path) -> dict[str, "np.ndarray"]:
    """An .onnx_adapter file as {name: numpy array}."""
    import onnxruntime as ort

    if not path.is_file():
        raise OlivepressError(f"{path}: no such adapter file")
    try:
        adapter = ort.AdapterFormat.read_adapter(str(path))
    except Exception as error:  # onnxruntime raises plain RuntimeErrors for a file it cannot parse
        raise OlivepressError(f"{path}: not an .onnx_adapter file ({error})") from None
    # The values view the adapter's buffer, which goes when `adapter` does: copy them out.
    return {name: value.numpy().copy() for name, value in adapter.get_parameters().items()}


# ---- graphs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoraInput:
    """What a graph expects of one LoRA input: its element type and its fixed (non-rank) axis."""

    dtype: str  # numpy dtype name
    fixed_axis: int  # 0 for A ([in, rank]), 1 for B ([rank, out])
    size: int


def graph_lora_inputs(graph) -> dict[str, LoraInput]:
    """The LoRA inputs of an ONNX graph (GraphProto), by name."""
    from onnx.helper import tensor_dtype_to_np_dtype

    inputs = {}
    for value in graph.input:
        found = target_of_weight(value.name)
        if found is None:
            continue
        dims = value.type.tensor_type.shape.dim
        axis = 0 if found[1] == "A" else 1
        inputs[value.name] = LoraInput(tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name, axis,
                                       dims[axis].dim_value)
    return inputs


def folder_lora_inputs(model_dir: Path) -> dict[str, LoraInput]:
    """The LoRA inputs of the decoder graph of a GenAI model folder (read without its weights)."""
    import onnx

    config_file = model_dir / "genai_config.json"
    if not config_file.is_file():
        raise OlivepressError(f"{model_dir}: not an ONNX Runtime GenAI model folder (no genai_config.json)")
    decoder = json.loads(config_file.read_text(encoding="utf-8"))["model"]["decoder"]
    return graph_lora_inputs(onnx.load(str(model_dir / decoder["filename"]), load_external_data=False).graph)


def check_adapter_fits(weights: dict[str, "np.ndarray"], inputs: dict[str, LoraInput], source: str) -> None:
    """Refuse adapter weights that the graph cannot take: unknown names, wrong sizes or dtypes."""
    if not inputs:
        raise OlivepressError(f"{source}: the model has no LoRA inputs; export it with an adapter "
                              "(auto-opt --adapter_path, or ModelBuilder + ExtractAdapters)")
    unknown = sorted(set(weights) - set(inputs))
    if unknown:
        modules = sorted({lora_weight_target(name)[0].module for name in inputs})
        raise OlivepressError(
            f"{source}: {len(unknown)} weights are not inputs of the model (e.g. {unknown[0]}); "
            f"the model takes LoRA on {', '.join(modules)}"
        )
    for name, array in weights.items():
        expected = inputs[name]
        if array.ndim != 2 or array.shape[expected.fixed_axis] != expected.size:
            shape = f"[rank, {expected.size}]" if expected.fixed_axis else f"[{expected.size}, rank]"
            raise OlivepressError(
                f"{source}: {name} has shape {list(array.shape)} but the model takes {shape}: "
                "the adapter was trained on a different base"
            )
        if array.dtype.name != expected.dtype:
            raise OlivepressError(f"{source}: {name} is {array.dtype.name} but the model takes {expected.dtype}")
