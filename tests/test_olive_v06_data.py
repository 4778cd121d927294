"""Olive 0.5/0.6 documents as written: pass- and metric-level dataloader_func, Olive's evaluate_func call,
AzureML placeholders, metric-level inference_settings, and the pass parameters Olive's examples set (use_gqa,
MatMulConstBOnly, merge_adapter_weights, use_ort_trainer, pack_model_for_onnx_conversion, make_inputs)."""

import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from olivepress.config.migration import migrate
from olivepress.config.sections import DataConfig
from olivepress.data.container import HuggingfaceContainer
from olivepress.errors import OlivepressError
from olivepress.evaluation.forward import input_rows, session_settings
from olivepress.models.handles import OnnxModel, PyTorchModel
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow

sys.path.insert(0, str(Path(__file__).parent))
from pass_runner import run_pass  # noqa: E402

RECORDING_SCRIPT = """
CALLS = []


def create_dataloader(data_dir, batchsize, *args, **kwargs):
    CALLS.append((data_dir, batchsize, args, kwargs))
    return [({"input": [[1.0, 2.0]]}, [0])] * 2


def eval_accuracy(model, data_dir, batch_size, device, execution_providers):
    CALLS.append((type(model).__name__, data_dir, batch_size, device, execution_providers))
    return 0.75
"""


def _script(folder: Path) -> Path:
    script = folder / "user_script.py"
    script.write_text(RECORDING_SCRIPT, encoding="utf-8")
    (folder / "data").mkdir()
    return script


def _onnx_model(folder: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    return folder


def _v06_document(tmp_path: Path) -> dict:
    _script(tmp_path)
    _onnx_model(tmp_path / "model")
    return {
        "input_model": {"type": "ONNXModel", "config": {"model_path": "model"}},
        "evaluators": {"common_evaluator": {"metrics": [
            {"name": "accuracy", "type": "accuracy", "sub_types": [{"name": "accuracy_score", "priority": 1}],
             "user_config": {"user_script": "user_script.py", "dataloader_func": "create_dataloader",
                             "batch_size": 4, "data_dir": "data", "func_kwargs": {"dataloader_func": {"split": 1}}}},
            {"name": "custom", "type": "custom",
             "sub_types": [{"name": "accuracy_custom", "priority": 2, "higher_is_better": True}],
             "user_config": {"user_script": "user_script.py", "data_dir": "data", "evaluate_func": "eval_accuracy",
                             "batch_size": 16}},
        ]}},
        "passes": {
            "quantization": {"type": "OnnxStaticQuantization", "config": {
                "user_script": "user_script.py", "data_dir": "data", "dataloader_func": "create_dataloader"}},
            "perf_tuning": {"type": "OrtPerfTuning", "config": {
                "user_script": "user_script.py", "dataloader_func": "create_dataloader", "batch_size": 16,
                "data_dir": "data", "dataloader_func_kwargs": {"seed": 7}}},
        },
        "engine": {"evaluator": "common_evaluator", "cache_dir": "cache", "output_dir": "out"},
    }


def _loaded(tmp_path: Path, document: dict, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return load_workflow(path, PassRegistry.default())


def _data(workflow, name: str) -> DataConfig:
    return next(data for data in workflow.config.data_configs if data.name == name)


def _calls(tmp_path: Path) -> list:
    from olivepress.user_code import load_script

    return load_script(str(tmp_path / "user_script.py")).module.CALLS


# ---- dataloader_func on passes and metrics ---------------------------------------------------------

def test_pass_level_dataloader_func_becomes_a_data_config_that_calls_it_as_olive_did(tmp_path, monkeypatch):
    workflow = _loaded(tmp_path, _v06_document(tmp_path), monkeypatch)
    steps = {step.name: step for step in workflow.steps}
    assert steps["perf_tuning"].config.data_config == "perf_tuning_data"
    assert steps["quantization"].config.data_config == "quantization_data"
    data = _data(workflow, "perf_tuning_data")
    assert data.dataloader_config.type == "create_dataloader" and data.dataloader_config.call == "data_dir"
    assert any("perf_tuning.config.dataloader_func: Olive 0.2-0.6's dataloader_func became data config "
               "'perf_tuning_data'" in line for line in workflow.rewrite_lines())

    batches = HuggingfaceContainer(data).user_batches()
    assert len(batches) == 2
    # Olive's call: func(data_dir, batch_size, **dataloader_func_kwargs), batch_size by position
    assert _calls(tmp_path)[-1] == ("data", 16, (), {"seed": 7})
    HuggingfaceContainer(_data(workflow, "quantization_data")).user_batches()
    assert _calls(tmp_path)[-1] == ("data", 1, (), {})  # Olive's default batch size for calibration


def test_metric_level_dataloader_func_is_called_with_the_models_framework(tmp_path, monkeypatch):
    workflow = _loaded(tmp_path, _v06_document(tmp_path), monkeypatch)
    metrics = {metric.name: metric for metric in workflow.config.evaluators["common_evaluator"].metrics}
    assert metrics["accuracy"].data_config == "common_evaluator_accuracy_data"
    data = _data(workflow, "common_evaluator_accuracy_data")
    rows = input_rows(OnnxModel(path=tmp_path / "model"), data)
    assert rows[0]["input"].tolist() == [[1.0, 2.0]]  # the inputs of each (inputs, labels) batch
    assert _calls(tmp_path)[-1] == ("data", 4, (), {"model_framework": "ONNX", "split": 1})
    input_rows(PyTorchModel(path=tmp_path / "m.pt"), data)
    assert _calls(tmp_path)[-1][3]["model_framework"] == "PyTorch"


def test_custom_evaluate_func_with_data_dir_gets_olives_arguments(tmp_path, monkeypatch):
    from olivepress.evaluation.custom import measure
    from olivepress.evaluation.metrics import MeasureContext
    from olivepress.hardware import Accelerator

    workflow = _loaded(tmp_path, _v06_document(tmp_path), monkeypatch)
    metric = workflow.config.evaluators["common_evaluator"].metrics[1]
    context = MeasureContext(Accelerator("cpu", "CPUExecutionProvider"), generator=lambda: None)
    assert measure(metric, OnnxModel(path=tmp_path / "model"), None, context) == {"accuracy_custom": 0.75}
    assert _calls(tmp_path)[-1] == ("OnnxModel", "data", 16, "cpu", ["CPUExecutionProvider"])


def test_dataloader_func_beside_data_config_is_one_line(tmp_path, monkeypatch):
    document = _v06_document(tmp_path)
    document["passes"]["quantization"]["config"]["data_config"] = "calib"
    with pytest.raises(OlivepressError) as error:
        _loaded(tmp_path, document, monkeypatch)
    problems = [line.split(": ", 1)[1] for line in error.value.problems]
    assert problems == ["passes.quantization.config.dataloader_func: Olive 0.2-0.6's dataloader_func is given beside "
                        "data_config; keep one"]


def test_an_azureml_datastore_data_dir_keeps_its_shape_and_stops_a_local_run(tmp_path, monkeypatch):
    document = _v06_document(tmp_path)
    document["passes"]["perf_tuning"]["config"]["data_dir"] = {
        "type": "azureml_datastore", "config": {"datastore_name": "blobs", "relative_path": "cifar-10"}}
    workflow = _loaded(tmp_path, document, monkeypatch)
    data = _data(workflow, "perf_tuning_data")
    assert data.load_dataset_config.params.data_dir == "azureml://datastores/blobs/paths/cifar-10"
    with pytest.raises(OlivepressError, match="azureml://datastores/blobs/paths/cifar-10 is an AzureML datastore "
                                              "path, which olivepress does not download"):
        HuggingfaceContainer(data).user_batches()


def test_static_quantization_calibrates_on_olives_calibration_reader(tmp_path, monkeypatch):
    from olivepress.passes.onnx.static_quantization import OnnxStaticQuantization

    monkeypatch.chdir(tmp_path)
    (tmp_path / "calib.py").write_text(
        "import numpy as np\n\n\nclass Reader:\n    def __init__(self, data_dir, count):\n"
        "        assert data_dir == 'data'\n"
        "        self.rows = iter([{'x': np.full((1, 4), i, dtype=np.float32)} for i in range(count)])\n\n"
        "    def get_next(self):\n        return next(self.rows, None)\n\n\n"
        "def calibration_reader(data_dir, batch_size, *args, **kwargs):\n    return Reader(data_dir, batch_size)\n",
        encoding="utf-8")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [weight])
    (tmp_path / "model").mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model" / "model.onnx")
    migrated = migrate({"passes": {"q": {"type": "OnnxStaticQuantization", "config": {
        "user_script": "calib.py", "data_dir": "data", "dataloader_func": "calibration_reader", "batch_size": 5}}}})
    data = DataConfig.model_validate(migrated.document["data_configs"][0])
    _, metrics = run_pass(OnnxStaticQuantization, OnnxModel(path=tmp_path / "model"), tmp_path / "run", data,
                          data_config=data.name, quant_preprocess=False)
    assert metrics["calibration_batches"] == 5 and metrics["qdq_nodes"] > 0


# ---- AzureML placeholders ------------------------------------------------------------------------

def test_placeholders_in_the_azureml_workspace_are_warnings_and_local_ones_errors():
    document = {
        "azureml_client": {"subscription_id": "<subscription_id>", "resource_group": "<place_holder>",
                           "workspace_name": "ws"},
        "systems": {"aml": {"type": "AzureML", "config": {"aml_compute": "<my_aml_compute>"}}},
        "input_model": {"type": "HfModel", "model_path": "<model_name_placeholder>"},
    }
    migration = migrate(document)
    assert migration.document["azureml_client"] == {"workspace_name": "ws"}
    notes = {rewrite.path: rewrite.message for rewrite in migration.rewrites}
    assert "removed: a run that reaches the AzureML workspace takes it from the environment" in \
        notes[("azureml_client", "subscription_id")]
    assert "kept: a run on this system stops at it" in notes[("systems", "aml", "config", "aml_compute")]
    assert [problem.path for problem in migration.old_keys] == [("input_model", "model_path")]


# ---- metric-level keys and inference_settings -----------------------------------------------------

def test_metric_level_inference_settings_belong_to_user_config():
    document = {"evaluators": {"e": {"metrics": [{"name": "lat", "type": "latency", "data_config": "d",
                                                  "inference_settings": {"onnx": {"execution_provider": "X"}}}]}}}
    migration = migrate(document)
    metric = migration.document["evaluators"]["e"]["metrics"][0]
    assert metric["user_config"] == {"inference_settings": {"onnx": {"execution_provider": "X"}}}
    # a problem found there is reported where the user wrote it
    assert migration.written(("evaluators", "e", "metrics", 0, "user_config", "inference_settings")) == \
        ("evaluators", "e", "metrics", 0, "inference_settings")


def test_onnx_inference_settings_shape_the_evaluation_session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    providers = session_settings({"execution_provider": ["CPUExecutionProvider"],
                                  "session_options": {"intra_op_num_threads": 3, "execution_mode": "ORT_PARALLEL",
                                                      "graph_optimization_level": 1,
                                                      "extra_session_config": {"session.disable_prepacking": "1"}}},
                                 options, ort.get_available_providers())
    assert providers == ["CPUExecutionProvider"]
    assert options.intra_op_num_threads == 3 and options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.get_session_config_entry("session.disable_prepacking") == "1"
    with pytest.raises(OlivepressError, match="execution_provider: NoSuchExecutionProvider is not available"):
        session_settings({"execution_provider": "NoSuchExecutionProvider"}, ort.SessionOptions(), ["CPUExecutionProvider"])
    with pytest.raises(OlivepressError, match="session_options: unknown option 'threads'"):
        session_settings({"session_options": {"threads": 2}}, ort.SessionOptions(), ["CPUExecutionProvider"])


# ---- pass parameters ------------------------------------------------------------------------------

def _mha_decoder(folder: Path, heads: int = 4, head_size: int = 8) -> Path:
    """A decoder attention with past key/values, as MultiHeadAttention fed by an attention_mask input."""
    hidden = heads * head_size
    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", hidden]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
              *(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", heads, "past", head_size])
                for name in ("past_key", "past_value"))]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", hidden]),
               *(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", heads, "total", head_size])
                 for name in ("present_key", "present_value"))]
    weights = [numpy_helper.from_array(rng.standard_normal((hidden, hidden)).astype(np.float32), f"w_{n}")
               for n in "qkv"]
    nodes = [helper.make_node("MatMul", ["hidden", f"w_{n}"], [n]) for n in "qkv"]
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask_int32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "mask_int32", "", "past_key", "past_value"],
                                  ["out", "present_key", "present_value"], domain="com.microsoft", num_heads=heads,
                                  name="MultiHeadAttention_0"))
    graph = helper.make_graph(nodes, "decoder", inputs, outputs, weights)
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]), folder / "model.onnx")
    return folder


def test_use_gqa_replaces_multi_head_attention_with_group_query_attention(tmp_path):
    import onnxruntime as ort

    from olivepress.passes.onnx.transformers_optimization import OrtTransformersOptimization

    model = OnnxModel(path=_mha_decoder(tmp_path / "in"))
    output, _ = run_pass(OrtTransformersOptimization, model, tmp_path / "run", model_type="gpt2", num_heads=4,
                         hidden_size=32, opt_level=0, float16=True, use_gqa=True, num_key_value_heads=2)
    graph = onnx.load(output.path / "model.onnx").graph
    ops = [node.op_type for node in graph.node]
    assert "GroupQueryAttention" in ops and "MultiHeadAttention" not in ops
    gqa = next(node for node in graph.node if node.op_type == "GroupQueryAttention")
    assert {a.name: a.i for a in gqa.attribute} == {"num_heads": 4, "kv_num_heads": 2}
    ort.InferenceSession(str(output.path / "model.onnx"), providers=["CPUExecutionProvider"])  # a valid graph

    plain, _ = run_pass(OrtTransformersOptimization, model, tmp_path / "plain", model_type="gpt2", num_heads=4,
                        hidden_size=32, opt_level=0, float16=True)
    assert "MultiHeadAttention" in [node.op_type for node in onnx.load(plain.path / "model.onnx").graph.node]


def test_use_gqa_needs_float16():
    from pydantic import ValidationError

    from olivepress.passes.onnx.transformers_optimization import OrtTransformersOptimizationConfig

    with pytest.raises(ValidationError, match="use_gqa: GroupQueryAttention replaces attention in the float16 model"):
        OrtTransformersOptimizationConfig(use_gqa=True)


def _two_input_matmul(folder: Path) -> Path:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")], "g", [a, b], [y])
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    return folder


def test_matmul_const_b_only_as_olive_exposes_it(tmp_path):
    from olivepress.passes.onnx.quantization import OnnxDynamicQuantization

    model = OnnxModel(path=_two_input_matmul(tmp_path / "in"))
    default, metrics = run_pass(OnnxDynamicQuantization, model, tmp_path / "default")
    assert metrics["quantized_nodes"] == 0  # onnxruntime's default for dynamic: only constant B is quantized
    _, metrics = run_pass(OnnxDynamicQuantization, model, tmp_path / "all", MatMulConstBOnly=False)
    assert metrics["quantized_nodes"] == 1
    with pytest.raises(OlivepressError, match="MatMulConstBOnly is given both as a parameter and in extra_options"):
        run_pass(OnnxDynamicQuantization, model, tmp_path / "both", MatMulConstBOnly=False,
                 extra_options={"MatMulConstBOnly": True})


def test_make_inputs_true_is_what_extract_adapters_does_and_false_is_refused():
    migration = migrate({"passes": {"x": {"type": "ExtractAdapters", "config": {"make_inputs": True}}}})
    assert migration.document["passes"]["x"]["config"] == {}
    assert "true is what ExtractAdapters does" in migration.rewrites[0].message
    migration = migrate({"passes": {"x": {"type": "ExtractAdapters", "make_inputs": False}}})
    assert migration.old_keys[0].path == ("passes", "x", "make_inputs")
    assert "false (Olive 0.6: the adapter weights stay initializers" in migration.old_keys[0].message


def test_the_dataloader_call_leaves_the_fingerprints_of_data_without_it(tmp_path):
    from olivepress.data.fingerprint import data_fingerprint
    from olivepress.hashing import FingerprintMemo

    (tmp_path / "u.py").write_text("def f(records, **params):\n    return []\n", encoding="utf-8")
    base = {"name": "d", "type": "DataContainer", "user_script": str(tmp_path / "u.py"),
            "dataloader_config": {"type": "f", "params": {"batch_size": 2}}}
    plain = DataConfig.model_validate(base)
    assert "call" not in plain.model_dump()["dataloader_config"]
    explicit = DataConfig.model_validate({**base, "dataloader_config": {**base["dataloader_config"], "call": "records"}})
    olive = DataConfig.model_validate({**base, "dataloader_config": {**base["dataloader_config"], "call": "data_dir"}})
    memo = FingerprintMemo(tmp_path / "memo.db")
    assert data_fingerprint(plain, memo) == data_fingerprint(explicit, memo) != data_fingerprint(olive, memo)


def test_olives_added_parameters_leave_the_cache_keys_of_documents_without_them(tmp_path, monkeypatch):
    from olivepress.engine.keys import pass_key
    from olivepress.hardware import Accelerator
    from olivepress.passes.pytorch.lora import LoRA
    from olivepress.passes.pytorch.quantize import AWQ

    cpu = Accelerator("cpu", "CPUExecutionProvider")
    for pass_class, added, base in ((LoRA, "merge_adapter_weights", {"train_data_config": "t"}),
                                    (LoRA, "use_ort_trainer", {"train_data_config": "t"}),
                                    (AWQ, "pack_model_for_onnx_conversion", {})):
        unset = pass_class.Config.model_validate(base)
        assert added not in unset.model_dump()  # so the key is computed as before the parameter existed
        keys = [pass_key("in", pass_class, pass_class.Config.model_validate({**base, **extra}), cpu)
                for extra in ({}, {added: False}, {added: True})]
        assert keys[0] == keys[1] != keys[2]


@pytest.mark.slow
def test_merge_adapter_weights_outputs_the_merged_model(tiny_llama, tmp_path, caplog):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from olivepress.models.handles import HfModel
    from olivepress.passes.pytorch.lora import LoRA

    source = tmp_path / "train.jsonl"
    source.write_text("".join(json.dumps({"text": "Paris has the Louvre and the Eiffel Tower."}) + "\n"
                              for _ in range(16)), encoding="utf-8")
    data = DataConfig(name="t", load_dataset_config={"params": {"data_name": "json", "data_files": str(source)}},
                      pre_process_data_config={"params": {"max_seq_len": 16}})
    training = {"max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 5e-2}
    with caplog.at_level(logging.WARNING):
        merged, _ = run_pass(LoRA, HfModel(path=tiny_llama), tmp_path / "merged", data, r=4, train_data_config="t",
                             merge_adapter_weights=True, use_ort_trainer=True, training_args=training)
    assert "use_ort_trainer (Olive 0.6's ONNX Runtime training) is not used" in caplog.text
    assert merged.adapter_path is None and merged.path == tmp_path / "merged" / "out" / "model"
    adapter = tmp_path / "merged" / "out" / "adapter"
    rows = torch.tensor([[1, 5, 9, 13, 17, 21]])

    def logits(model):
        with torch.no_grad():
            return model.eval()(input_ids=rows).logits

    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    expected = logits(PeftModel.from_pretrained(base, adapter))
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(merged.path, dtype=torch.float32)),
                               expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(logits(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)),
                              expected, atol=1e-4)


def test_io_config_kv_cache_may_be_olives_mapping():
    from olivepress.config.sections import IoConfig

    config = IoConfig(input_names=["input_ids"], output_names=["logits"],
                      kv_cache={"ort_past_key_name": "past_key_<id>", "ort_past_value_name": "past_value_<id>"})
    assert config.kv_cache  # refused when exported: OnnxConversion reads kv_cache true only


def test_col_filters_keeps_the_rows_olive_keeps(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"text": f"row {n}", "language": lang}) + "\n"
                              for n, lang in enumerate(["Python", "C", "Python"])), encoding="utf-8")
    data = DataConfig(name="d", load_dataset_config={"params": {"data_name": "json", "data_files": str(source),
                                                                "col_filters": {"language": "Python"}}})
    assert HuggingfaceContainer(data).records()["text"] == ["row 0", "row 2"]
    wrong = DataConfig(name="d", load_dataset_config={"params": {"data_name": "json", "data_files": str(source),
                                                                 "col_filters": {"lang": "C"}}})
    with pytest.raises(OlivepressError, match="col_filters: the data has no column 'lang'; its columns are text, "
                                              "language"):
        HuggingfaceContainer(wrong).records()


def test_a_latency_dataloader_func_gives_its_first_batch_as_olive_timed_it(tmp_path, monkeypatch):
    """Olive's llama2 example loader has only __getitem__, and never ends; Olive timed next(iter(loader))."""
    from olivepress.evaluation.timing import TimingUserConfig, metric_rows

    monkeypatch.chdir(tmp_path)
    (tmp_path / "endless.py").write_text(
        "import torch\n\n\nclass Endless:\n    def __getitem__(self, index):\n"
        "        return {'input_ids': torch.full((2, 8), index)}, None\n\n\n"
        "def loader(data_dir, batch_size, **kwargs):\n    return Endless()\n", encoding="utf-8")
    user = TimingUserConfig.model_validate({"user_script": "endless.py", "dataloader_func": "loader", "batch_size": 2})
    rows = metric_rows(user, "ONNX")
    assert len(rows) == 1 and rows[0]["input_ids"].tolist() == [[0] * 8] * 2


def test_an_olive_loaders_past_key_values_reach_a_torch_model_as_a_cache(tiny_llama, tmp_path):
    """Olive's dataloaders give a causal LM's past as a list of (key, value) per layer; each call gets a new cache."""
    import torch

    from olivepress.data.batches import as_row
    from olivepress.evaluation.forward import TorchRunner
    from olivepress.hardware import Accelerator
    from olivepress.models.handles import HfModel

    runner = TorchRunner(HfModel(tiny_llama), Accelerator("cpu", "CPUExecutionProvider"))
    past = [(torch.rand(2, 2, 4, 16), torch.rand(2, 2, 4, 16)) for _ in range(2)]  # 2 layers, 2 KV heads of 16
    row = as_row(({"input_ids": torch.ones(2, 1, dtype=torch.long), "attention_mask": torch.ones(2, 5, dtype=torch.long),
                   "position_ids": torch.full((2, 1), 4), "past_key_values": past}, None))
    feeds = runner.feeds(row)
    for _ in range(2):  # the second call sees the same 4 past positions, not the first call's 5
        assert runner(feeds).logits.shape[:2] == (2, 1)
