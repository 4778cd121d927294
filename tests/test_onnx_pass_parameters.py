"""Olive's parameters on olivepress's existing ONNX passes: the external-data layout of every ONNX-writing pass,
ModelBuilder's enable_cuda_graph and metadata_only, OnnxConversion's device and save_metadata_for_token_generation,
ExtractAdapters' adapter_type."""

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_runner import pass_context
from pydantic import ValidationError

from olivepress.models.handles import HfModel, OnnxModel
from olivepress.passes.onnx.conversion import OnnxConversion
from olivepress.passes.onnx.extract_adapters import ExtractAdaptersConfig
from olivepress.passes.onnx.float16 import OnnxFloatToFloat16
from olivepress.passes.onnx.model_builder import ModelBuilder, ModelBuilderConfig, builder_command
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files
from olivepress.passes.registry import PassRegistry

OLIVE_EXTERNAL_DATA = {"save_as_external_data": True, "all_tensors_to_one_file": True,
                       "external_data_name": "weights.pb", "size_threshold": 0, "convert_attribute": False}


def run_pass(pass_class, model, folder: Path, **config):
    context = pass_context(folder)
    return pass_class().run(model, pass_class.Config.model_validate(config), context)


def two_matmuls(folder: Path) -> OnnxModel:
    """y = (x @ W1 + b) @ W2, weights 64x64 float32, plus a side file."""
    rng = np.random.default_rng(0)
    weights = {"W1": rng.normal(size=(64, 64)), "b": rng.normal(size=(64,)), "W2": rng.normal(size=(64, 64))}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"], name="first"), helper.make_node("Add", ["h", "b"], ["hb"]),
         helper.make_node("MatMul", ["hb", "W2"], ["y"], name="second")],
        "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()])
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    (folder / "config.json").write_text("{}")
    return OnnxModel(folder)


def outputs(model: OnnxModel) -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(3, 64)).astype(np.float32)
    session = ort.InferenceSession(str(model.path / model.onnx_file_name), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def locations(model: OnnxModel) -> set[str]:
    proto = onnx.load(str(model.path / model.onnx_file_name), load_external_data=False)
    return {entry.value for tensor in proto.graph.initializer for entry in tensor.external_data if entry.key == "location"}


# ---- external data ------------------------------------------------------------------------------

def test_every_onnx_writing_pass_takes_olives_external_data_parameters():
    writers = [cls for cls in PassRegistry.builtin() if issubclass(cls.Config, ExternalDataOptions)]
    assert {"OnnxConversion", "OnnxFloatToFloat16", "OnnxDynamicQuantization", "OnnxMatMulNBits",
            "OrtTransformersOptimization", "ExtractAdapters", "OnnxStaticQuantization", "OnnxQuantization",
            "GraphSurgeries", "OnnxBlockWiseRtnQuantization", "OnnxHqqQuantization", "OnnxKQuantQuantization",
            "MatMulNBitsToQDQ", "DynamicToFixedShape", "OnnxPeepholeOptimizer"} <= {cls.name for cls in writers}
    for cls in writers:
        assert set(OLIVE_EXTERNAL_DATA) <= set(cls.Config.keys_of_fields()), cls.name
    config = OnnxFloatToFloat16.Config.model_validate(OLIVE_EXTERNAL_DATA)
    assert (config.external_data_name, config.size_threshold) == ("weights.pb", 0)
    with pytest.raises(ValidationError, match="external_data_name\n  Value error, must be a file name, without a folder"):
        ExternalDataOptions.model_validate({"external_data_name": "../weights.pb"})


def test_external_data_layouts(tmp_path):
    model = two_matmuls(tmp_path / "in")
    expected = outputs(model)
    half = lambda name, **options: run_pass(OnnxFloatToFloat16, model, tmp_path / name, **options)  # noqa: E731

    one_file = half("inline", save_as_external_data=False)
    assert sorted(p.name for p in one_file.path.iterdir()) == ["config.json", "model.onnx"]
    assert locations(one_file) == set()

    named = half("named", **OLIVE_EXTERNAL_DATA)
    assert locations(named) == {"weights.pb"}
    assert sorted(p.name for p in named.path.iterdir()) == ["config.json", "model.onnx", "weights.pb"]
    proto = onnx.load(str(named.path / "model.onnx"), load_external_data=False)
    assert all(tensor.data_location == TensorProto.EXTERNAL for tensor in proto.graph.initializer)  # threshold 0

    default = half("default")  # tensors of 1024 bytes or more go out; the float16 bias (128 bytes) stays in
    assert locations(default) == {"model.onnx.data"}
    inline = [t.name for t in onnx.load(str(default.path / "model.onnx"), load_external_data=False).graph.initializer
              if t.data_location != TensorProto.EXTERNAL]
    assert inline == ["b"]

    per_tensor = half("per-tensor", save_as_external_data=True, all_tensors_to_one_file=False)
    assert locations(per_tensor) == {"W1", "W2"}
    for result in (one_file, named, default, per_tensor):
        # measured: float16 weights change the outputs by at most 0.06 on values up to 120
        assert np.abs(outputs(result) - expected).max() < 1e-3 * np.abs(expected).max()

    # a later pass reads the per-tensor layout and copies only the side files, not the weight files
    again = tmp_path / "again"
    again.mkdir()
    assert copy_side_files(per_tensor, again) == ["config.json"]


# ---- ModelBuilder ----------------------------------------------------------------------------------

def test_enable_cuda_graph_on_cpu_is_one_warning_not_a_refusal(tmp_path, caplog):
    model = HfModel(tmp_path)
    config = ModelBuilderConfig.model_validate({"precision": "int4", "enable_cuda_graph": True})
    with caplog.at_level(logging.WARNING):
        command = builder_command(model, config, pass_context(tmp_path / "cpu"))
    assert not any(part.startswith("enable_cuda_graph=") for part in command)
    assert [record.getMessage() for record in caplog.records] == [
        "ModelBuilder: enable_cuda_graph applies to the cuda and NvTensorRtRtx execution providers; "
        "the cpu model is built without it"]
    caplog.clear()
    cuda = builder_command(model, config, pass_context(tmp_path / "cuda", "CUDAExecutionProvider"))
    assert "enable_cuda_graph=true" in cuda and not caplog.records
    off = ModelBuilderConfig.model_validate({"enable_cuda_graph": False, "execution_provider": "cuda"})
    assert "enable_cuda_graph=false" in builder_command(model, off, pass_context(tmp_path / "off"))


@pytest.mark.slow
def test_metadata_only_writes_genai_config_beside_an_exported_model(tiny_llama, tmp_path):
    exported = run_pass(OnnxConversion, HfModel(tiny_llama), tmp_path / "export")
    described = run_pass(ModelBuilder, exported, tmp_path / "meta", precision="fp32", metadata_only=True,
                         search={"max_length": 77, "do_sample": True})
    genai = json.loads((described.path / "genai_config.json").read_text())
    assert genai["search"]["max_length"] == 77 and genai["search"]["do_sample"] is True
    assert "top_k" in genai["search"]  # the builder's other search options stay
    assert genai["model"]["decoder"]["filename"] == "model.onnx"
    assert genai["model"]["vocab_size"] == json.loads((tiny_llama / "config.json").read_text())["vocab_size"]
    for name in ("model.onnx", "model.onnx.data"):
        assert (described.path / name).read_bytes() == (exported.path / name).read_bytes()
    assert (described.path / "tokenizer.json").is_file()
    with pytest.raises(Exception, match="metadata_only: ModelBuilder builds a Hugging Face model, or, with "
                                        "metadata_only: true, writes the metadata of an ONNX model"):
        run_pass(ModelBuilder, exported, tmp_path / "no-flag", precision="fp32")


# ---- OnnxConversion ------------------------------------------------------------------------------

@pytest.mark.slow
def test_conversion_device_and_token_generation_metadata(tiny_llama, tmp_path, caplog):
    import torch

    with caplog.at_level(logging.WARNING):
        bare = run_pass(OnnxConversion, HfModel(tiny_llama), tmp_path / "bare", device="cuda", dynamic=False,
                        save_metadata_for_token_generation=False, **OLIVE_EXTERNAL_DATA)
    names = {p.name for p in bare.path.iterdir()}
    assert names == {"model.onnx", "weights.pb", "config.json"}
    if not torch.cuda.is_available():
        assert [r.getMessage() for r in caplog.records] == [
            "OnnxConversion: device cuda asked for, but there is no CUDA device; tracing on the CPU"]
    full = run_pass(OnnxConversion, HfModel(tiny_llama), tmp_path / "full")
    assert {"tokenizer.json", "tokenizer_config.json", "config.json", "model.onnx.data"} <= {p.name for p in full.path.iterdir()}
    fixed = ort.InferenceSession(str(bare.path / "model.onnx"))
    assert [i.shape for i in fixed.get_inputs()] == [[2, 8], [2, 8]]  # dynamic: false keeps the traced shapes
    assert ort.InferenceSession(str(full.path / "model.onnx")).get_inputs()[0].shape == ["batch", "sequence"]
    ids = np.random.default_rng(0).integers(0, 300, (2, 8))
    feed = {"input_ids": ids, "attention_mask": np.ones((2, 8), dtype=np.int64)}
    run = lambda m: ort.InferenceSession(str(m.path / "model.onnx")).run(None, feed)[0]  # noqa: E731
    assert np.abs(run(bare) - run(full)).max() < 1e-4


# ---- ExtractAdapters -------------------------------------------------------------------------------

def test_extract_adapters_adapter_type():
    assert ExtractAdaptersConfig.model_validate({"adapter_type": "lora"}).adapter_type == "lora"
    with pytest.raises(ValidationError, match="'dora' adapters cannot be extracted: olivepress's adapter files hold "
                                              "LoRA weights only"):
        ExtractAdaptersConfig.model_validate({"adapter_type": "dora"})


# ---- vendor passes ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("pass_type", "sdk", "plugin"), [
    ("OpenVINOOptimumConversion", "Intel OpenVINO (pip: openvino, nncf, optimum-intel)", "olivepress-openvino"),
    ("QuarkQuantization", "AMD Quark (pip: amd-quark)", "olivepress-quark"),
    ("VitisGenerateModelLLM", "the AMD Ryzen AI / Vitis AI SDK", "olivepress-ryzenai"),
    ("qnnconversion", "the Qualcomm AI Engine Direct (QNN / QAIRT) SDK", "olivepress-qnn"),
    ("NVModelOptQuantization", "NVIDIA TensorRT Model Optimizer (pip: nvidia-modelopt)", "olivepress-modelopt"),
    ("IncStaticQuantization", "Intel Neural Compressor (pip: neural-compressor)", "olivepress-inc"),
    ("EPContextBinaryGenerator", "an execution provider that compiles EPContext binaries", "olivepress-epcontext"),
])
def test_vendor_passes_are_refused_naming_sdk_and_plugin(pass_type, sdk, plugin):
    from olivepress.errors import OlivepressError

    with pytest.raises(OlivepressError) as refused:
        PassRegistry.builtin().get(pass_type)
    message = str(refused.value)
    assert message.startswith(f"pass type '{pass_type}' needs {sdk}") and "\n" not in message
    assert f"a plugin package such as '{plugin}' would provide it through the 'olivepress.passes' entry point" in message
    with pytest.raises(OlivepressError, match="unknown pass type 'OnnxQuantisation' \\(did you mean 'OnnxQuantization'"):
        PassRegistry.builtin().get("OnnxQuantisation")


def test_a_plugin_providing_a_vendor_pass_wins(tmp_path):
    from olivepress.passes.base import Pass, PassConfig
    from olivepress.passes.registry import _IN_PROCESS, register_pass

    class QuarkQuantization(Pass[OnnxModel, PassConfig]):
        name = "QuarkQuantization"
        description = "A vendor's plugin."
        accepts = ("onnx",)
        produces = "onnx"

        def run(self, model, config, context):
            return model

    register_pass(QuarkQuantization)
    try:
        assert PassRegistry.default().get("QuarkQuantization") is QuarkQuantization
    finally:
        _IN_PROCESS.pop("quarkquantization")


def test_olive_spellings_of_the_integer_types():
    from olivepress.passes.onnx.quantization import OnnxDynamicQuantizationConfig
    from olivepress.passes.onnx.static_quantization import OnnxStaticQuantizationConfig

    assert OnnxDynamicQuantizationConfig.model_validate({"precision": "uint8"}).weight_type == "uint8"
    assert OnnxDynamicQuantizationConfig.model_validate({"weight_type": "QUInt8"}).weight_type == "uint8"
    assert OnnxDynamicQuantizationConfig().weight_type == "int8"
    static = OnnxStaticQuantizationConfig.model_validate({"data_config": "d", "weight_type": "QInt16",
                                                          "activation_type": "QUInt16"})
    assert (static.precision, static.activation_type) == ("int16", "uint16")
    with pytest.raises(ValidationError, match="Input should be 'int8' or 'uint8'"):
        OnnxDynamicQuantizationConfig.model_validate({"precision": "int16"})
