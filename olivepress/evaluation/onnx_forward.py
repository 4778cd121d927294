"""Full-sequence logits of an ONNX decoder with plain onnxruntime: one forward, empty past key/values."""

import json

import numpy as np

from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.models.onnx_adapters import read_adapter_file

NUMPY_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
               "tensor(float16)": np.float16}


class OnnxDecoder:
    """The model's decoder graph (genai_config.json's, else the model file) in an onnxruntime session."""

    def __init__(self, model: OnnxModel, execution_provider: str):
        import onnxruntime as ort

        config_file = model.path / "genai_config.json"
        decoder = json.loads(config_file.read_text(encoding="utf-8"))["model"]["decoder"] if config_file.is_file() else {}
        graph = model.path / decoder.get("filename", model.onnx_file_name)
        if not graph.is_file():
            raise OlivepressError(f"{model.path}: no {graph.name} in this ONNX model folder")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = list(dict.fromkeys([p for p in (execution_provider, "CPUExecutionProvider") if p in available]))
        self.session = ort.InferenceSession(str(graph), options, providers=providers)
        self.inputs = self.session.get_inputs()
        if "logits" not in {output.name for output in self.session.get_outputs()}:
            raise OlivepressError(f"{graph}: the graph has no logits output (built without its LM head?)")
        self._kv_shape = (decoder.get("num_key_value_heads"), decoder.get("head_size"))
        adapter = model.exported_adapter()
        # LoRA weights are overridable initializers (not in `inputs`); left unfed they give the base model.
        self._adapter_feeds = read_adapter_file(adapter[1]) if adapter else {}

    def logits(self, ids: list[int]) -> np.ndarray:
        """[len(ids), vocab] float32 logits of one sequence."""
        feeds = {}
        length = len(ids)
        for value in self.inputs:
            dtype = NUMPY_TYPES.get(value.type)
            if dtype is None:
                raise OlivepressError(f"graph input {value.name} has type {value.type}, which the evaluator cannot feed")
            if value.name == "input_ids":
                feeds[value.name] = np.array([ids], dtype=dtype)
            elif value.name == "attention_mask":
                feeds[value.name] = np.ones((1, length), dtype=dtype)
            elif value.name == "position_ids":
                feeds[value.name] = np.arange(length, dtype=dtype)[None]
            elif value.name.startswith("past_key_values") or value.name.startswith("past_"):
                feeds[value.name] = np.zeros(self._past_shape(value), dtype=dtype)
            else:
                raise OlivepressError(f"graph input {value.name}: the evaluator feeds only input_ids, attention_mask, "
                                      "position_ids and past key/values")
        return self.session.run(["logits"], {**feeds, **self._adapter_feeds})[0][0].astype(np.float32)

    def _past_shape(self, value) -> tuple[int, ...]:
        """[batch 1, kv heads, past length 0, head size], from the graph's static dims or genai_config.json."""
        heads, head_size = (dim if isinstance(dim, int) else known
                            for dim, known in zip(value.shape[1:4:2], self._kv_shape, strict=True))
        if heads is None or head_size is None:
            raise OlivepressError(f"graph input {value.name}: cannot tell its heads and head size")
        return (1, heads, 0, head_size)
