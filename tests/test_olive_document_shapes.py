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


def test_a_managed_environment_is_read_and_a_host_that_is_the_target_is_the_target():
    workflow = _validated({"input_model": MODEL, "systems": {"env": {"type": "PythonEnvironment", "config": {
        "accelerators": [{"device": "GPU", "execution_providers": None}],
        "olive_managed_env": True, "requirements_file": "r.txt"}}}, "engine": {"host": "env", "target": "env"}})
    name, system = workflow.config.target_system()
    assert (name, system.olive_managed_env, system.requirements_file, system.python_environment_path) == (
        "env", True, "r.txt", None)
    assert workflow.config.engine.host is None
    assert [(".".join(map(str, r.path)), r.message) for r in workflow.rewrites] == [
        ("engine.host", "'env' is the target too: passes and evaluations run in that Python environment as "
                        "engine.target; removed")]
    both = {"type": "PythonEnvironment", "olive_managed_env": True, "python_environment_path": "/v"}
    assert _problems({"input_model": MODEL, "systems": {"env": both}}) == [
        "w.json: systems.env.python_environment_path: olive_managed_env builds the environment; give one of them"]


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


# Olive 0.6's examples/opt_125m/awq.json: the model from hf_config, its export functions from model_script
OPT_AWQ_MODEL = {"type": "PyTorchModel", "config": {
    "model_script": "user_script.py", "dummy_inputs_func": "dummy_inputs", "io_config": "get_io_config",
    "hf_config": {"model_name": "facebook/opt-125m", "task": "text-generation",
                  "from_pretrained_args": {"trust_remote_code": True}}}}


def test_an_older_hf_config_model_with_export_functions_is_the_hub_model_with_the_scripts_functions():
    workflow = _validated({"input_model": OPT_AWQ_MODEL, "passes": {
        "4bit_awq_quantizer": {"type": "AutoAWQQuantizer", "config": {"pack_model_for_onnx_conversion": True}},
        "conversion_merged": {"type": "OnnxConversion", "config": {"device": "cuda"}}}})
    model = workflow.config.input_model
    assert (model.type, model.model_path, model.task, model.load_kwargs) == (
        "HfModel", "facebook/opt-125m", "text-generation", {"trust_remote_code": True})
    assert (model.model_script, model.io_config, model.dummy_inputs_func) == (
        "user_script.py", "get_io_config", "dummy_inputs")
    assert [step.pass_class.name for step in workflow.steps] == ["AWQ", "OnnxConversion"]  # AWQ takes the hf model
    assert ("input_model.config.model_script", "the model is loaded from hf_config, as in Olive 0.2-0.6; "
            "dummy_inputs_func, io_config of model_script are called when OnnxConversion exports it (also after "
            "passes that make a new Hugging Face model from it)") in [
        (".".join(map(str, r.path)), r.message) for r in workflow.rewrites]


def test_an_hf_models_function_names_need_the_script_that_holds_them():
    assert _problems({"input_model": {**MODEL, "io_config": "get_io_config"}}) == [
        "w.json: input_model.io_config: names a function of model_script, which is not given: give model_script, the "
        "file that holds it (or io_config as a mapping)"]
    assert _problems({"input_model": {**MODEL, "io_config": {"input_names": ["input_ids"]}}}) == [
        "w.json: input_model.io_config.output_names: Field required"]


def test_a_pass_that_makes_a_new_hf_model_keeps_the_scripts_export_functions(tmp_path):
    from olivepress.models.handles import HfModel, handle_from_config

    source = HfModel(path=tmp_path / "m", model_script=tmp_path / "s.py", io_config="get_io_config",
                     dummy_inputs_func="dummy_inputs")
    made = HfModel(path=tmp_path / "out").with_export_functions(source)
    assert (made.path, made.model_script, made.io_config, made.dummy_inputs_func) == (
        tmp_path / "out", tmp_path / "s.py", "get_io_config", "dummy_inputs")
    assert handle_from_config(made.to_config()) == made  # through the cache and the worker protocol
    own = HfModel(path=tmp_path / "out", io_config={"input_names": ["x"], "output_names": ["y"]})
    assert own.with_export_functions(source) == own  # a model with an io_config of its own keeps it


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


def test_shared_kv_buffer_is_read_beside_io_bind_and_named_as_not_used(tmp_path):
    from olivepress.evaluation.forward import unread_settings
    from olivepress.models.handles import OnnxModel

    metrics = [{"name": "latency", "type": "latency", "sub_types": [{"name": "avg"}],
                "user_config": {"io_bind": True, "shared_kv_buffer": True}},
               {"name": "acc", "type": "accuracy", "sub_types": [{"name": "accuracy_score"}],
                "user_config": {"shared_kv_buffer": True}, "data_config": "d"}]
    workflow = _validated({"input_model": MODEL, "evaluators": {"e": {"metrics": metrics}},
                           "data_configs": [{"name": "d", "type": "HuggingfaceContainer",
                                             "load_dataset_config": {"data_name": "glue", "subset": "mrpc"}}]})
    latency, accuracy = workflow.config.evaluators["e"].metrics
    assert latency.user_config.shared_kv_buffer and accuracy.user_config.shared_kv_buffer
    assert unread_settings({"onnx": {}}, True, OnnxModel(path=tmp_path), True) == ["io_bind", "shared_kv_buffer"]


def test_an_unmanaged_environments_requirements_file_is_removed_as_olive_ignores_it():
    workflow = _validated({"input_model": MODEL, "systems": {"env": {"type": "PythonEnvironment", "config": {
        "python_environment_path": "/venv", "olive_managed_env": False, "requirements_file": "r.txt"}}}})
    assert workflow.config.systems["env"].python_environment_path == "/venv"
    assert [(".".join(map(str, r.path)), r.message) for r in workflow.rewrites] == [
        ("systems.env.config.olive_managed_env", "false: the environment at python_environment_path is used; removed"),
        ("systems.env.config.requirements_file", "read by Olive only with olive_managed_env: true; removed")]
