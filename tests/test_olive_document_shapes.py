"""Olive's model and system keys outside metrics: read as Olive reads them, or refused in one line that names the
Olive version and what to do instead; a template's placeholders are one line each, not what the value is not."""

import pytest

from olivepress.config.errors import DocumentError
from olivepress.config.source import SourceDocument
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import validate_document

MODEL = {"type": "HfModel", "model_path": "org/m"}


def _validated(document: dict):
    return validate_document(SourceDocument(data=document, file="w.json"), PassRegistry.default())


def _problems(document: dict) -> list[str]:
    with pytest.raises(DocumentError) as error:
        _validated(document)
    return error.value.problems


def test_io_config_output_shapes_and_types_are_read_and_checked_against_output_names():
    io_config = {"input_names": ["input_ids", "pixel_values"], "input_shapes": [[10, 77], [1, 3, 224, 224]],
                 "output_names": ["logits_per_image"], "output_shapes": [[1, 2]], "output_types": ["float32"]}
    workflow = _validated({"input_model": {**MODEL, "io_config": io_config, "generative": False}})
    model = workflow.config.input_model
    assert model.io_config is not None
    assert (model.io_config.output_shapes, model.io_config.output_types) == ([[1, 2]], ["float32"])
    assert model.generative is False
    assert _problems({"input_model": {**MODEL, "io_config": {**io_config, "output_shapes": [[1, 2], [3]]}}}) == [
        "w.json: input_model.io_config: output_shapes has 2 entries but output_names has 1"]


def test_generative_is_read_on_every_model_type():
    for model in ({**MODEL, "generative": True}, {"type": "OnnxModel", "model_path": "m.onnx", "generative": False},
                  {"type": "PytorchModel", "model_path": "org/m", "model_loader": "load", "model_script": "s.py",
                   "generative": False}):
        assert _validated({"input_model": model}).config.input_model.generative is model["generative"]


def test_a_null_output_dir_is_the_default():
    assert _validated({"input_model": MODEL, "output_dir": None}).config.engine.output_dir == "output"


def test_each_placeholder_of_a_template_is_one_line_instead_of_what_it_causes():
    problems = _problems({
        "input_model": {"type": "PyTorchModel", "config": {"hf_config": {"model_name": "<model_name_placeholder>"}}},
        "systems": {"local": {"type": "LocalSystem", "config": {"accelerators": [
            {"device": "<place_holder>", "execution_providers": "<place_holder>"}]}}},
        "passes": {"convert": {"type": "OnnxConversion", "torch_dtype": "<<str: float_precision>>"}},
        "engine": {"target": "<target>"},
    })
    filled = "is a template's placeholder, not filled in: write the value"
    assert problems == [
        f"w.json: input_model.config.hf_config.model_name: '<model_name_placeholder>' {filled}",
        f"w.json: systems.local.config.accelerators[0].device: '<place_holder>' {filled}",
        f"w.json: systems.local.config.accelerators[0].execution_providers: '<place_holder>' {filled}",
        f"w.json: passes.convert.torch_dtype: '<<str: float_precision>>' {filled}",
        f"w.json: engine.target: '<target>' {filled}",
    ]


def test_special_tokens_and_paths_in_angle_brackets_are_not_placeholders():
    workflow = _validated({"input_model": MODEL, "workflow_id": "<s>", "output_dir": "<|end|>"})
    assert (workflow.config.workflow_id, workflow.config.engine.output_dir) == ("<s>", "<|end|>")


def test_a_docker_system_is_refused_with_what_to_do_and_its_reference_is_not_a_second_problem():
    problems = _problems({"input_model": MODEL, "engine": {"target": "docker_system"}, "systems": {
        "docker_system": {"type": "docker", "image_name": "olive", "build_context_path": "docker",
                          "accelerators": [{"device": "gpu", "execution_providers": None}]}}})
    assert problems == [
        "w.json: systems.docker_system: a Docker system (Olive 0.2+) runs the passes in a container it builds, which "
        "olivepress does not start: run olivepress inside the image (docker run IMAGE olivepress run --config ...), or "
        "use a PythonEnvironment system"]


def test_a_managed_environment_is_one_line_without_the_missing_path_it_causes():
    problems = _problems({"input_model": MODEL, "systems": {"env": {"type": "PythonEnvironment", "config": {
        "accelerators": [{"device": "GPU", "execution_providers": None}],
        "olive_managed_env": True, "requirements_file": "r.txt"}}}})
    assert problems == [
        "w.json: systems.env.config.olive_managed_env: an environment Olive builds from requirements_file "
        "(olive_managed_env, Olive 0.6) is not built by olivepress: create it (python -m venv, pip install -r the "
        "file, olivepress) and give its python_environment_path"]


def test_a_composite_input_model_and_hf_config_components_are_refused_in_one_line():
    assert _problems({"input_model": {"type": "CompositeModel", "model_component_names": ["a"]}}) == [
        "w.json: input_model: CompositeModel (Olive 0.6+) is not an input model: olivepress takes one model per "
        "document; give each component a document of its own (its OnnxModel, or a PyTorchModel whose model_loader "
        "returns it)"]
    assert _problems({"input_model": {"type": "PyTorchModel", "config": {"hf_config": {
        "model_name": "org/m", "components": [{"name": "decoder", "component_func": "get_decoder"}]}}}}) == [
        "w.json: input_model.config.hf_config.components: a key of Olive 0.2-0.6 that olivepress does not read; use a "
        "document per component, each with a PyTorchModel whose model_loader returns that component (a model of "
        "components is not an input model)"]


def test_export_functions_of_an_older_hf_config_model_are_one_line_saying_what_to_write():
    problems = _problems({"input_model": {"type": "PyTorchModel", "config": {
        "model_script": "user_script.py", "dummy_inputs_func": "dummy_inputs", "io_config": "get_io_config",
        "hf_config": {"model_name": "org/m", "task": "text-generation"}}}})
    assert problems == [
        "w.json: input_model.config.model_script: model_script, dummy_inputs_func, io_config: Olive 0.2-0.6 took a "
        "hf_config model's export functions from model_script, which olivepress reads on a PyTorchModel: add a "
        "model_loader function to the script that returns the model and drop hf_config, or give io_config as a "
        "mapping"]


def test_load_best_model_at_end_saves_a_checkpoint_at_each_evaluation(tmp_path):
    from olivepress.passes.pytorch.training import training_arguments

    args = training_arguments({"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 3,
                               "save_steps": 100}, tmp_path, use_cpu=True)
    assert (args.save_strategy, args.save_steps, args.load_best_model_at_end) == ("steps", 3, True)
    assert training_arguments({}, tmp_path, use_cpu=True).save_strategy == "no"


def test_a_hub_snapshot_copied_into_the_cache_holds_its_files_not_its_relative_links(tmp_path):
    from olivepress.files import copy_folder

    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "abc").write_text("weights")
    snapshot = tmp_path / "snapshots" / "commit"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to("../../blobs/abc")
    copy_folder(snapshot, tmp_path / "entry" / "inputs" / "model", link_files=True)
    copied = tmp_path / "entry" / "inputs" / "model" / "model.safetensors"
    assert not copied.is_symlink()
    assert copied.read_text() == "weights"


EVALUATORS = {"size": {"metrics": [{"name": "size", "type": "size_on_disk"}]},
              "other": {"metrics": [{"name": "bytes", "type": "size_on_disk"}]}}


def test_the_last_pass_evaluator_scores_the_output_as_in_olive_and_the_others_are_removed():
    workflow = _validated({
        "input_model": MODEL, "evaluators": EVALUATORS, "engine": {"evaluator": "other"},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "evaluator": "other"},
                   "int8": {"type": "OnnxDynamicQuantization", "evaluator": "size"}}})
    assert workflow.config.engine.evaluator == "size"
    assert [(".".join(map(str, r.path)), r.message) for r in workflow.rewrites] == [
        ("passes.builder.evaluator", "Olive scores only the last pass's output with its evaluator outside a "
                                     "pass-by-pass search; removed"),
        ("passes.int8.evaluator", "the last pass's evaluator scores the output, as in Olive: engine.evaluator size"),
    ]
    assert _problems({"input_model": MODEL, "passes": {"b": {"type": "ModelBuilder", "evaluator": "missing"}}}) == [
        "w.json: passes.b.evaluator: no evaluator named 'missing' in 'evaluators'"]


def test_a_pass_evaluator_in_a_pass_by_pass_search_or_with_pass_flows_is_refused_saying_what_to_set():
    problems = _problems({
        "input_model": MODEL, "evaluators": EVALUATORS, "pass_flows": [["builder"]],
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "evaluator": "size"}}})
    assert problems == [
        "w.json: passes.builder.evaluator: a pass's own evaluator (Olive 0.2+) scores its stage of a pass-by-pass "
        "search, and the output of a pass flow it ends; olivepress scores those with engine.evaluator: set that "
        "instead"]


def test_an_hf_model_io_config_given_as_a_function_name_says_where_functions_are_read():
    assert _problems({"input_model": {**MODEL, "io_config": "get_io_config"}}) == [
        "w.json: input_model.io_config: a function name, which olivepress calls for a PyTorchModel (from its "
        "model_script); give an HfModel's io_config as a mapping (got 'get_io_config')"]
