"""Latency and throughput of one forward pass, Olive's way: the model run on each row of model inputs that the
data makes (a dummy container's token rows, the user's dataloader batches, or tokenized records), timed."""

import json
import time
from typing import Any

import numpy as np

from olivepress.config.sections import DataConfig
from olivepress.data.batches import Row, as_row, batches_of
from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel, ModelHandle, OnnxModel, PyTorchModel, single_model

NUMPY_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
               "tensor(float16)": np.float16, "tensor(bool)": np.bool_}


def is_forward_timing(model: ModelHandle, data_config: DataConfig) -> bool:
    """Whether latency means one forward per row rather than a generated answer: for dummy or user-batched data,
    and for models that cannot generate (a PyTorchModel, a Hugging Face model of another task than text-generation,
    an ONNX graph without genai_config.json)."""
    if data_config.is_dummy():
        return not data_config.dummy_params().generative
    if data_config.user_function("dataloader_config") is not None:
        return True
    if isinstance(model, PyTorchModel) or isinstance(model, HfModel) and model.task != "text-generation":
        return True
    return isinstance(model, OnnxModel) and not (model.path / "genai_config.json").is_file()


def input_rows(model: ModelHandle, data_config: DataConfig) -> list[Row]:
    """Each batch of model inputs, as numpy arrays by input name (or by position, '0', '1', ..., for tuples): the
    classification batches when the rows hold the pre-processing's label_col, else causal-LM token rows."""
    from olivepress.data.container import HuggingfaceContainer

    container = HuggingfaceContainer(data_config)
    if data_config.is_dummy():
        return dummy_rows(data_config)
    if data_config.user_function("dataloader_config") is not None:
        records = container.load_dataset() if data_config.user_function("load_dataset_config") else None
        return user_rows(container.user_batches(records, model_framework(model)))
    if isinstance(model, PyTorchModel) or model.path is None:
        raise OlivepressError(f"data_configs.{data_config.name}: a PyTorchModel has no tokenizer to make token rows "
                              "with; give a dummy container or a dataloader function of user_script")
    from olivepress.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model.path)
    if (labelled := container.labelled_batches(tokenizer)) is not None:
        return [inputs for inputs, _ in labelled]
    train, held_out = container.datasets(tokenizer)
    rows = held_out if held_out is not None else train
    return [{name: np.array([row[name]], dtype=np.int64) for name in row if name != "labels"} for row in rows]


def model_framework(model: ModelHandle) -> str:
    """Olive's name of the model's framework, which its metrics gave a dataloader_func."""
    return "ONNX" if isinstance(model, OnnxModel) else "PyTorch"


def dummy_rows(data_config: DataConfig) -> list[Row]:
    """Olive's transformers dummy rows: batch 1, token ids 1, a mask over past + current tokens, positions after
    the past ones; past key/values are made per graph input (their shapes are the graph's)."""
    params = data_config.dummy_params()
    length, past = params.seq_len, params.past_seq_len
    row = {"input_ids": np.ones((1, length), dtype=np.int64),
           "attention_mask": np.ones((1, past + length), dtype=np.int64),
           "position_ids": np.arange(past, past + length, dtype=np.int64)[None]}
    return [dict(row, past_seq_len=np.array(past)) for _ in range(params.max_samples)]


def user_rows(batches: Any, limit: int | None = None) -> list[Row]:
    return [as_row(batch) for batch in batches_of(batches, limit)]


def ones_rows(names: list[str], shapes: list[list[int]], types: list[str] | None) -> list[Row]:
    """One row of ones shaped as Olive's metric-level dummy data (input_names, input_shapes, input_types)."""
    if len(shapes) != len(names) or (types is not None and len(types) != len(names)):
        raise OlivepressError("user_config: input_names, input_shapes and input_types must have one entry per input")
    kinds = types or ["int64"] * len(names)
    return [{name: np.ones(shape, dtype=kind) for name, shape, kind in zip(names, shapes, kinds, strict=True)}]


def model_io_rows(model: ModelHandle) -> list[Row]:
    """Olive's latency data when a metric names none: one row of ones shaped as the model's inputs (an ONNX graph's
    fixed input shapes, else the io_config's input_shapes)."""
    if isinstance(model, OnnxModel):
        import onnx

        graph = onnx.load(str(model.path / model.onnx_file_name), load_external_data=False).graph
        defaults = {tensor.name for tensor in graph.initializer}
        inputs = [value for value in graph.input if value.name not in defaults]
        shapes = [[dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]
                  for value in inputs]
        loose = next((value.name for value, shape in zip(inputs, shapes, strict=True) if None in shape), None)
        if loose is not None:
            raise OlivepressError(f"graph input {loose} has no fixed shape to make rows of ones from; name a "
                                  "data_configs entry, or give user_config input_names and input_shapes")
        types = [str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)) for value in inputs]
        return ones_rows([value.name for value in inputs], shapes, types)  # type: ignore[arg-type]
    io_config = getattr(model, "io_config", None)
    if not isinstance(io_config, dict) or not io_config.get("input_shapes"):
        raise OlivepressError("the metric names no data_config and the model's io_config gives no input_shapes to "
                              "make rows of ones from; name a data_configs entry")
    return ones_rows(io_config["input_names"], io_config["input_shapes"], io_config.get("input_types"))


class OnnxRunner:
    """An onnxruntime session fed from rows: the graph's inputs by name (else by position), empty-valued past
    key/values where the graph takes them."""

    def __init__(self, model: OnnxModel, accelerator: Accelerator, settings: dict[str, Any] | None = None):
        import onnxruntime as ort

        graph = model.path / model.onnx_file_name
        if not graph.is_file():
            raise OlivepressError(f"{model.path}: no {model.onnx_file_name} in this ONNX model folder")
        available = ort.get_available_providers()
        providers: list[Any] = list(dict.fromkeys(p for p in (accelerator.execution_provider, "CPUExecutionProvider")
                                                  if p in available))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if settings:
            providers = session_settings(settings, options, available)
        self.session = ort.InferenceSession(str(graph), options, providers=providers)
        self.inputs = self.session.get_inputs()
        config_file = model.path / "genai_config.json"
        decoder = json.loads(config_file.read_text(encoding="utf-8"))["model"]["decoder"] if config_file.is_file() else {}
        self._kv = (decoder.get("num_key_value_heads"), decoder.get("head_size"))

    def feeds(self, row: Row) -> dict[str, np.ndarray]:
        takes_past = any(value.name.startswith("past") for value in self.inputs)
        past = int(row.get("past_seq_len", np.array(0))) if takes_past else 0
        feeds: dict[str, np.ndarray] = {}
        for index, value in enumerate(self.inputs):
            dtype = NUMPY_TYPES.get(value.type, np.float32)
            if value.name in row or str(index) in row:
                array = row[value.name] if value.name in row else row[str(index)]
                if value.name == "attention_mask" and not takes_past:
                    array = array[:, -row["input_ids"].shape[1]:] if "input_ids" in row else array
                feeds[value.name] = array.astype(dtype)
            elif value.name.startswith("past"):
                feeds[value.name] = np.zeros(self._past_shape(value, past), dtype=dtype)
            elif value.name == "token_type_ids" and "input_ids" in row:
                # a tokenizer without token types: every token is of the first segment, as in the torch model
                feeds[value.name] = np.zeros_like(row["input_ids"], dtype=dtype)
            else:
                raise OlivepressError(f"graph input {value.name}: the data's rows do not hold it; they hold "
                                      f"{', '.join(name for name in row if name != 'past_seq_len')}")
        return feeds

    def _past_shape(self, value, past: int) -> tuple[int, ...]:
        heads, head_size = (dim if isinstance(dim, int) else known
                            for dim, known in zip(value.shape[1:4:2], self._kv, strict=True))
        if heads is None or head_size is None:
            raise OlivepressError(f"graph input {value.name}: cannot tell its heads and head size")
        return (1, heads, past, head_size)

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


class TorchRunner:
    """The torch module called with each row: by keyword for a Hugging Face model, by position for a PyTorchModel
    given tuples."""

    def __init__(self, model: HfModel | PyTorchModel, accelerator: Accelerator):
        from olivepress.evaluation.torch_model import load_for_eval, torch_device

        self.device = torch_device(accelerator)
        if isinstance(model, PyTorchModel):
            from olivepress.models.pytorch import load_pytorch_model

            self.network = load_pytorch_model(model).to(self.device)
        else:
            self.network = load_for_eval(model, self.device)

    def feeds(self, row: Row) -> dict[str, Any]:
        import torch

        return {name: torch.from_numpy(value).to(self.device) for name, value in row.items() if name != "past_seq_len"}

    def __call__(self, feeds: dict[str, Any]) -> Any:
        import torch

        with torch.no_grad():
            if all(name.isdigit() for name in feeds):
                return self.network(*feeds.values())
            return self.network(**self._with_cache(feeds))

    def _with_cache(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Olive's dataloaders give a causal LM's past as a list of (key, value) per layer, one (layers, 2, batch,
        heads, past, head size) array as a row; transformers takes a Cache, made anew per call as the model extends
        it."""
        past = feeds.get("past_key_values")
        if past is None or past.dim() != 6:
            return feeds
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=[(layer[0], layer[1]) for layer in past], config=self.network.config)
        return {**feeds, "past_key_values": cache}


def session_settings(settings: dict[str, Any], options: Any, available: list[str]) -> list[Any]:
    """Olive's ONNX inference settings (a metric's user_config.inference_settings.onnx) applied to `options`: its
    session_options (intra_op_num_threads, inter_op_num_threads, execution_mode, graph_optimization_level,
    extra_session_config, enable_profiling); the providers its execution_provider names (with provider_options)."""
    import onnxruntime as ort

    where = "user_config.inference_settings.onnx"
    unknown = sorted(set(settings) - {"execution_provider", "provider_options", "session_options"})
    if unknown:
        raise OlivepressError(f"{where}: unknown key '{unknown[0]}'; it has execution_provider, provider_options, "
                              "session_options")
    for key, value in (settings.get("session_options") or {}).items():
        if key == "extra_session_config":
            for name, entry in value.items():
                options.add_session_config_entry(name, str(entry))
        elif key in ("execution_mode", "graph_optimization_level"):
            setattr(options, key, _ort_enum(ort.ExecutionMode if key == "execution_mode" else ort.GraphOptimizationLevel,
                                            value, f"{where}.session_options.{key}"))
        elif key in ("intra_op_num_threads", "inter_op_num_threads", "enable_profiling"):
            setattr(options, key, value)
        else:
            raise OlivepressError(f"{where}.session_options: unknown option '{key}'")
    named = settings.get("execution_provider")
    names = [named] if isinstance(named, str) else list(named or [])
    providers = [entry if isinstance(entry, str) else tuple(entry) for entry in names]
    missing = [name for name in (p if isinstance(p, str) else p[0] for p in providers) if name not in available]
    if missing:
        raise OlivepressError(f"{where}.execution_provider: {missing[0]} is not available in this onnxruntime "
                              f"(it has {', '.join(available)})")
    if settings.get("provider_options"):
        providers = [(name, dict(extra)) for name, extra in zip(providers, settings["provider_options"], strict=True)]
    return providers or ["CPUExecutionProvider"]


def unread_settings(inference_settings: dict[str, Any] | None, io_bind: bool, model: ModelHandle,
                    shared_kv_buffer: bool = False) -> list[str]:
    """The parts of Olive's inference settings that olivepress does not use for `model`: I/O binding and its shared
    past/present key-value buffer (host arrays are fed), and the settings of another framework than an ONNX model's."""
    unread = [key for key, value in (("io_bind", io_bind), ("shared_kv_buffer", shared_kv_buffer)) if value]
    used = "onnx" if isinstance(model, OnnxModel) else None
    return unread + [f"inference_settings.{key}" for key in inference_settings or {} if key != used]


def _ort_enum(enum: Any, value: Any, where: str) -> Any:
    """An onnxruntime enum member by its name (ORT_PARALLEL) or number (1; a level of 99 is ORT_ENABLE_ALL)."""
    members = dict(enum.__members__)
    found = members.get(value) if isinstance(value, str) else next(
        (member for member in members.values() if int(member) == value), None)
    if found is None:
        raise OlivepressError(f"{where}: {value!r} is none of {', '.join(members)}")
    return found


def onnx_settings(inference_settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ONNX part of Olive's inference_settings, which is keyed by framework ({onnx: {...}})."""
    return (inference_settings or {}).get("onnx")


def forward_seconds(model: ModelHandle, rows: list[Row], accelerator: Accelerator, warmup: int,
                    repeat: int, settings: dict[str, Any] | None = None) -> tuple[list[float], int]:
    """Seconds of each timed forward (cycling through the rows, after `warmup` untimed ones) and the rows per batch;
    `settings`: Olive's ONNX inference settings for the session."""
    if not rows:
        raise OlivepressError("the data makes no rows of model inputs")
    model = single_model(model, "evaluation")
    runner = OnnxRunner(model, accelerator, settings) if isinstance(model, OnnxModel) \
        else TorchRunner(model, accelerator)
    feeds = [runner.feeds(row) for row in rows]
    for number in range(warmup):
        runner(feeds[number % len(feeds)])
    seconds = []
    for number in range(repeat):
        started = time.perf_counter()
        runner(feeds[number % len(feeds)])
        seconds.append(time.perf_counter() - started)
    first = next(iter(rows[0].values()))
    return seconds, int(first.shape[0]) if first.ndim else 1
