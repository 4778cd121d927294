"""Olive's pass_flows: each flow runs as its own branch from the input model, outputs side by side."""

import json

import pytest

from olivepress import api
from olivepress.errors import OlivepressError


def flows_document(model, tmp_path, flows) -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32"},
                   "int4": {"type": "OnnxMatMulNBits", "block_size": 32}},
        "pass_flows": flows,
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }


def test_flows_name_passes_that_exist_and_chain(tiny_llama, tmp_path):
    with pytest.raises(OlivepressError) as error:
        api.load(flows_document(tiny_llama, tmp_path, [["builder", "int8"], ["int4"], []]))
    assert error.value.problems == [
        "<dict>: pass_flows[0][1]: no pass named 'int8' in 'passes' (did you mean 'int4'?)",
        "<dict>: pass_flows[1]: passes.int4: OnnxMatMulNBits takes onnx models, but the input model is an hf model",
        "<dict>: pass_flows[2]: an empty flow runs no pass",
    ]
    document = flows_document(tiny_llama, tmp_path, [["builder"]])
    document["systems"] = {"aml": {"type": "AzureML", "aml_compute": "c",
                                   "aml_environment_config": {"name": "env", "label": "latest"}}}
    document["engine"]["host"] = "aml"
    with pytest.raises(OlivepressError, match=r"^<dict>: pass_flows: pass flows run with a local engine.host: the "
                                              r"AzureML job of host 'aml' runs one flow; give each flow a document"):
        api.load(document)
    workflow = api.load(flows_document(tiny_llama, tmp_path, [["builder"], ["builder", "int4"]]))
    assert [(name, [step.name for step in steps]) for name, steps in workflow.flows()] == [
        ("builder", ["builder"]), ("builder-int4", ["builder", "int4"])]


@pytest.mark.slow
def test_each_flow_runs_from_the_shared_prefix_and_is_written_beside_the_others(tiny_llama, tmp_path, write_doc, cli,
                                                                               one_thread):
    doc = write_doc(flows_document(tiny_llama, tmp_path, [["builder"], ["builder", "int4"]]))
    code, out, err = cli("run", "--config", doc)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "flow builder:" and lines[1].startswith("pass builder (ModelBuilder): ran in ")
    assert lines[2] == "flow builder-int4:"
    assert lines[3].startswith("pass builder (ModelBuilder): from cache in ")  # the shared prefix ran once
    assert lines[4].startswith("pass int4 (OnnxMatMulNBits): ran in ")
    assert lines[5] == f"output: {tmp_path / 'out'}/  (builder/, builder-int4/, footprint.json)"
    out_dir = tmp_path / "out"
    assert json.loads((out_dir / "footprint.json").read_text())["pass_flows"] == ["builder", "builder-int4"]
    for flow, passes in (("builder", ["builder"]), ("builder-int4", ["builder", "int4"])):
        footprint = json.loads((out_dir / flow / "footprint.json").read_text())
        assert [step["name"] for step in footprint["passes"]] == passes
        assert (out_dir / flow / "model" / "model.onnx").is_file()
    int4 = (out_dir / "builder-int4" / "model" / "model.onnx").read_bytes()
    assert int4 != (out_dir / "builder" / "model" / "model.onnx").read_bytes()
    assert b"MatMulNBits" in int4
    code, out, err = cli("run", "--config", doc)  # a second run replaces its own output folder, from the cache
    assert code == 0, err
    assert sum("from cache" in line for line in out.splitlines()) == 3


@pytest.mark.slow
def test_with_an_evaluator_each_flow_is_evaluated_and_written_with_its_report(tiny_llama, tmp_path, one_thread):
    document = flows_document(tiny_llama, tmp_path, [["builder"], ["builder", "int4"]])
    document["evaluators"] = {"e": {"metrics": [{"name": "size", "type": "size_on_disk"}]}}
    document["engine"].update(evaluator="e", evaluate_input_model=False)
    result = api.run(document)
    assert [flow.name for flow in result.flows] == ["builder", "builder-int4"]
    sizes = [flow.search.require_best().metrics["size-bytes"] for flow in result.flows]
    assert sizes[1] < sizes[0]  # int4 weights are smaller than fp32 ones
    for flow in result.flows:
        assert (tmp_path / "out" / flow.name / "report.md").is_file()
        footprint = json.loads((tmp_path / "out" / flow.name / "footprint.json").read_text())
        assert footprint["output_model"]["metrics"]["size-bytes"] == flow.search.require_best().metrics["size-bytes"]
    assert json.loads((tmp_path / "out" / "footprint.json").read_text())["pass_flows"] == ["builder", "builder-int4"]


def test_no_artifacts_writes_no_output_folder(tiny_llama, tmp_path, cli, write_doc):
    document = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama)}, "no_artifacts": True,
                "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}}
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert out == "output: none written (engine.no_artifacts); the pass outputs are in the cache\n"
    assert not (tmp_path / "out").exists()
