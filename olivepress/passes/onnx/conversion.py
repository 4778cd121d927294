"""OnnxConversion: a Hugging Face model exported to ONNX with torch.onnx, as a pass."""

import contextlib
import importlib.util
import inspect
import io
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field

from olivepress.config.base import did_you_mean
from olivepress.config.sections import IoConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel, OnnxModel, PyTorchModel
from olivepress.models.loading import (
    load_causal_lm,
    read_model_config,
    torch_dtype,
    without_dtype,
)
from olivepress.models.pytorch import dummy_inputs_in_order, io_config_of
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, save_onnx

# The example inputs the model is traced with: batch 2, sequence 8, the first row padded at its end, so
# that no "every token is attended" shortcut of the attention code is baked into the graph.
EXAMPLE_SHAPE = [2, 8]
EXAMPLE_PADDING = 3

TORCHSCRIPT_MAX_OPSET = 20  # torch.onnx's TorchScript exporter writes no newer opset

# Files of a Hugging Face folder that hold weights; everything else (config, tokenizer, chat template,
# generation config) is copied beside the ONNX model for the steps downstream.
WEIGHT_FILE_ENDINGS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".index.json")


@dataclass(frozen=True)
class TaskExport:
    """How a task's model is loaded and what its graph returns."""

    auto_class: str  # the transformers class that loads the model
    outputs: tuple[str, ...]
    per_token: bool  # the outputs have a sequence axis


TASKS = {
    "text-classification": TaskExport("AutoModelForSequenceClassification", ("logits",), per_token=False),
    "token-classification": TaskExport("AutoModelForTokenClassification", ("logits",), per_token=True),
    "fill-mask": TaskExport("AutoModelForMaskedLM", ("logits",), per_token=True),
    "feature-extraction": TaskExport("AutoModel", ("last_hidden_state",), per_token=True),
    "question-answering": TaskExport("AutoModelForQuestionAnswering", ("start_logits", "end_logits"), per_token=True),
    "text-generation": TaskExport("AutoModelForCausalLM", ("logits",), per_token=True),
}

class OnnxConversionConfig(ExternalDataOptions):
    target_opset: int = Field(
        17, ge=7, validation_alias=AliasChoices("target_opset", "opset"), description="The ONNX opset of the graph."
    )
    io_config: IoConfig | None = Field(
        None, description="Inputs, outputs and dynamic axes; default derived from the model's task."
    )
    use_dynamo_exporter: bool = Field(
        False, description="Export with the torch.export-based exporter (needs the onnxscript package) "
                           "instead of the TorchScript one."
    )
    torch_dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="The dtype the model is loaded and exported in."
    )
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="Where the model is traced; cuda without a CUDA device traces on the CPU, with a warning."
    )
    dynamic: bool = Field(
        True, description="Symbolic batch and sequence axes (io_config's dynamic_axes); false fixes every shape to "
                          "the traced example's."
    )
    save_metadata_for_token_generation: bool = Field(
        True, description="Copy the tokenizer, generation config and chat template beside the graph (config.json "
                          "always goes: later passes read it). olivepress's default is true, Olive's false."
    )


class OnnxConversion(Pass[HfModel | PyTorchModel, OnnxConversionConfig]):
    name = "OnnxConversion"
    description = ("Export a Hugging Face model (encoders, classifiers, causal LMs, with past key/values by "
                   "io_config kv_cache) or a PyTorchModel to ONNX with torch.onnx.")
    version = "1"
    accepts = ("hf", "pytorch")
    produces = "onnx"
    Config = OnnxConversionConfig

    def run(self, model: HfModel | PyTorchModel, config: OnnxConversionConfig, context: PassContext) -> OnnxModel:
        import onnx

        check_exporter(config)
        if isinstance(model, PyTorchModel):
            from olivepress.passes.onnx.pytorch_export import export_pytorch_model

            return export_pytorch_model(model, config, context)
        if model.adapter_path is not None:
            raise OlivepressError(
                "OnnxConversion does not take an adapter; merge it first with a MergeAdapterWeights pass"
            )
        model_config = read_model_config(model.path)
        task = task_export(model.task)
        device = export_device(config.device, context)
        torch_model = load_for_export(model, task, config.torch_dtype).to(device)
        io_config = config.io_config or model_io_config(model) or derived_io_config(model.task, task, torch_model)
        if io_config.kv_cache:
            io_config = with_kv_cache(io_config, model_config, model.task)
        given = dummy_inputs_in_order(model, io_config.input_names)  # the model_script's dummy_inputs_func, if any
        example = given if given is not None else example_inputs(io_config, model_config.get("vocab_size", 2))
        example = tuple(tensor.to(device) for tensor in example)
        take_positional_inputs(torch_model, io_config)
        exported = context.scratch_dir / "export" / "model.onnx"
        exported.parent.mkdir()
        export(torch_model, example, io_config, config, exported, context)
        save_onnx(onnx.load(str(exported)), context.output_dir, options=config)
        copy_hf_side_files(model.path, context.output_dir, config.save_metadata_for_token_generation)
        return OnnxModel(path=context.output_dir)


def check_exporter(config: OnnxConversionConfig) -> None:
    if config.target_opset > TORCHSCRIPT_MAX_OPSET and not config.use_dynamo_exporter:
        raise OlivepressError(
            f"target_opset: the TorchScript exporter writes opsets up to {TORCHSCRIPT_MAX_OPSET}; "
            f"set use_dynamo_exporter for opset {config.target_opset}"
        )
    if config.use_dynamo_exporter and importlib.util.find_spec("onnxscript") is None:
        raise OlivepressError(
            "use_dynamo_exporter needs the onnxscript package, which is not installed: "
            "pip install 'olivepress[dynamo]', or leave use_dynamo_exporter off"
        )


def model_io_config(model: HfModel) -> IoConfig | None:
    """The io_config the input model carries (Olive's HfModel.io_config, or what the io_config function of its
    model_script returns), if any."""
    value = io_config_of(model)
    return IoConfig.model_validate(value) if value is not None else None


def task_export(task: str) -> TaskExport:
    try:
        return TASKS[task]
    except KeyError:
        raise OlivepressError(
            f"input_model.task: OnnxConversion cannot export a '{task}' model; it exports {', '.join(TASKS)}"
        ) from None


def export_device(device: str, context: PassContext) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        context.logger.warning("OnnxConversion: device cuda asked for, but there is no CUDA device; tracing on the CPU")
        return "cpu"
    return device


def load_for_export(model: HfModel, task: TaskExport, dtype: str):
    # Eager attention: its pattern is the one the ONNX Runtime transformers optimizer fuses into Attention.
    load_kwargs = {"attn_implementation": "eager", **without_dtype(model.load_kwargs)}
    if task.auto_class == "AutoModelForCausalLM" and model.model_class is None:
        return load_causal_lm(model.path, dtype, **load_kwargs).eval()
    import transformers

    auto_class = getattr(transformers, model.model_class or task.auto_class)
    return auto_class.from_pretrained(model.path, dtype=torch_dtype(dtype), **load_kwargs).eval()


def derived_io_config(task_name: str, task: TaskExport, torch_model) -> IoConfig:
    """Token ids and attention mask in (plus token_type_ids for encoders that take them), the task's outputs
    out; batch and sequence axes symbolic."""
    inputs = ["input_ids", "attention_mask"]
    if task_name != "text-generation" and "token_type_ids" in inspect.signature(torch_model.forward).parameters:
        inputs.append("token_type_ids")
    token_axes = {0: "batch", 1: "sequence"}
    output_axes = token_axes if task.per_token else {0: "batch"}
    return IoConfig(input_names=inputs, output_names=list(task.outputs),
                    dynamic_axes={**{name: token_axes for name in inputs}, **{name: output_axes for name in task.outputs}})


def with_kv_cache(io_config: IoConfig, model_config: dict[str, Any], task: str) -> IoConfig:
    """Olive's `kv_cache: true`: past_key_values.N.key/value inputs after the others and present.N.key/value outputs
    after the first, [batch, KV heads, past (present: total) length, head size]; the example's past is as long as
    its attention_mask is longer than its input_ids."""
    if not isinstance(io_config.kv_cache, bool):
        raise OlivepressError("io_config.kv_cache: a mapping of past key/value names and axes is not read; give true "
                              "(names past_key_values.N.key/value and present.N.key/value)")
    if task != "text-generation":
        raise OlivepressError(f"io_config.kv_cache: past key/values are added to a text-generation model, not to a "
                              f"'{task}' one")
    if "attention_mask" not in io_config.input_names or "input_ids" not in io_config.input_names:
        raise OlivepressError("io_config.kv_cache: the inputs must include input_ids and attention_mask")
    layers = model_config["num_hidden_layers"]
    heads = model_config.get("num_key_value_heads") or model_config["num_attention_heads"]
    head_size = model_config.get("head_dim") or model_config["hidden_size"] // model_config["num_attention_heads"]
    shapes = io_config.input_shapes or [EXAMPLE_SHAPE] * len(io_config.input_names)
    ids, mask = (shapes[io_config.input_names.index(name)] for name in ("input_ids", "attention_mask"))
    past = [f"past_key_values.{layer}.{kind}" for layer in range(layers) for kind in ("key", "value")]
    present = [f"present.{layer}.{kind}" for layer in range(layers) for kind in ("key", "value")]
    axes = dict(io_config.dynamic_axes or {})
    axes |= {name: {0: "batch_size", 2: "past_sequence_length"} for name in past}
    axes |= {name: {0: "batch_size", 2: "total_sequence_length"} for name in present}
    return io_config.model_copy(update={
        "input_names": [*io_config.input_names, *past], "output_names": [io_config.output_names[0], *present],
        "input_shapes": [*shapes, *[[ids[0], heads, mask[1] - ids[1], head_size]] * len(past)],
        "input_types": [*(io_config.input_types or ["int64"] * len(shapes)), *["float32"] * len(past)],
        "output_shapes": None, "output_types": None, "dynamic_axes": axes})


def example_inputs(io_config: IoConfig, vocab_size: int) -> tuple:
    import torch

    tensors = []
    for index, name in enumerate(io_config.input_names):
        shape = io_config.input_shapes[index] if io_config.input_shapes else EXAMPLE_SHAPE
        dtype = getattr(torch, io_config.input_types[index] if io_config.input_types else "int64")
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, dtype=dtype))
        elif name == "input_ids":
            tensors.append(torch.randint(0, vocab_size, shape, dtype=dtype))
        elif "mask" in name:
            mask = torch.ones(shape, dtype=dtype)
            if mask.dim() == 2 and mask.shape[1] > EXAMPLE_PADDING:
                mask[0, -EXAMPLE_PADDING:] = 0
            tensors.append(mask)
        else:
            tensors.append(torch.zeros(shape, dtype=dtype))
    return tuple(tensors)


def take_positional_inputs(torch_model, io_config: IoConfig) -> None:
    """Make the model's forward take the graph inputs positionally and return the graph outputs as a tuple.

    The model itself is exported (not a wrapper module), so that node names carry its own module paths
    (/model/layers.0/self_attn/q_proj/MatMul, /lm_head/MatMul), as the GenAI builder names them.
    """
    hf_forward = torch_model.forward
    parameters = list(inspect.signature(hf_forward).parameters)
    past = [name for name in io_config.input_names if name.startswith("past_key_values.")] if io_config.kv_cache else []
    for name in io_config.input_names:
        if name not in parameters and name not in past:
            raise OlivepressError(f"io_config.input_names: the model's forward takes no '{name}'{did_you_mean(name, parameters)}")
    fixed = {"use_cache": False} if "use_cache" in parameters else {}

    def forward(*inputs):
        named = dict(zip(io_config.input_names, inputs, strict=True))
        if not past:
            return select_outputs(hf_forward(**named, **fixed), io_config.output_names)
        from transformers import DynamicCache

        tensors = [named.pop(name) for name in past]
        cache = DynamicCache(ddp_cache_data=list(zip(tensors[::2], tensors[1::2], strict=True)), config=torch_model.config)
        outputs = hf_forward(**named, past_key_values=cache, use_cache=True)
        presents = (tensor for layer in outputs.past_key_values.layers for tensor in (layer.keys, layer.values))
        return (*select_outputs(outputs, io_config.output_names[:1]), *presents)

    torch_model.forward = forward


def select_outputs(outputs, names: list[str]) -> tuple:
    """The named entries of a model output, by key when it has them all, else its first ones in order."""
    if hasattr(outputs, "keys") and all(name in outputs.keys() for name in names):
        return tuple(outputs[name] for name in names)
    values = outputs.to_tuple() if hasattr(outputs, "to_tuple") else tuple(outputs)
    if len(values) < len(names):
        raise OlivepressError(
            f"io_config.output_names: {len(names)} outputs asked for, but the model returns {len(values)}"
        )
    return values[:len(names)]


def export(torch_model, example: tuple, io_config: IoConfig, config: OnnxConversionConfig, path: Path,
           context: PassContext) -> None:
    import torch

    if io_config.kv_cache and not any(name.startswith("past_key_values.") for name in io_config.input_names):
        raise OlivepressError("io_config.kv_cache: OnnxConversion does not add past key/value inputs to a PyTorchModel "
                              "(it does to a Hugging Face causal LM); export a KV-cache graph with ModelBuilder instead")
    options: dict[str, Any] = {"input_names": io_config.input_names, "output_names": io_config.output_names,
               "opset_version": config.target_opset}
    if config.use_dynamo_exporter:
        options |= {"dynamo": True, "dynamic_shapes": dynamic_shapes(io_config) if config.dynamic else None}
    else:
        options |= {"dynamo": False, "dynamic_axes": io_config.dynamic_axes if config.dynamic else None}
    # The exporters warn about every traced Python condition and print their progress; the CLI shows neither.
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(torch_model, example, str(path), **options)
    for warning in caught:
        context.logger.debug("torch.onnx: %s", warning.message)


def dynamic_shapes(io_config: IoConfig) -> tuple:
    """dynamic_axes as torch.export's dynamic_shapes for a forward(*inputs): one Dim per axis name."""
    from torch.export import Dim

    axes = io_config.dynamic_axes or {}
    dims = {name: Dim(name) for per_input in axes.values() for name in per_input.values()}
    return (tuple({axis: dims[name] for axis, name in axes.get(input_name, {}).items()} or None
                  for input_name in io_config.input_names),)


def copy_hf_side_files(source: Path, output_dir: Path, with_generation_files: bool = True) -> None:
    for file in sorted(source.iterdir()):
        wanted = with_generation_files or file.name == "config.json"
        if wanted and file.is_file() and not file.name.endswith(WEIGHT_FILE_ENDINGS):
            shutil.copy2(file, output_dir / file.name)
