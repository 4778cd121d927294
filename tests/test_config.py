"""Reading workflow documents: spellings, and errors that name the problem, the path and the line."""

import json

import pytest

from olivepress.config.errors import DocumentError
from olivepress.errors import OlivepressError
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import load_workflow

REGISTRY = PassRegistry.builtin()


def document(**overrides):
    doc = {
        "input_model": {"type": "HfModel", "model_path": "some/model"},
        "passes": {"builder": {"type": "ModelBuilder", "config": {"precision": "int4", "block_size": 64}}},
    }
    doc.update(overrides)
    return doc


def load(write_doc, doc, name="workflow.json"):
    return load_workflow(write_doc(doc, name), REGISTRY)


def test_json_and_yaml_documents_are_the_same(write_doc):
    from_json = load(write_doc, document(), "w.json")
    from_yaml = load(write_doc, document(), "w.yaml")
    assert from_json.config == from_yaml.config
    assert from_json.steps[0].config == from_yaml.steps[0].config


def test_flat_and_nested_pass_parameters_are_the_same(write_doc):
    nested = load(write_doc, document())
    flat = load(write_doc, document(passes={"builder": {"type": "ModelBuilder", "precision": "int4", "block_size": 64}}))
    assert flat.steps[0].config == nested.steps[0].config
    assert flat.steps[0].config.block_size == 64


def test_flat_and_nested_sections_are_the_same(write_doc):
    nested = load(write_doc, document(input_model={"type": "HfModel", "config": {"model_path": "a/b", "task": "x"}}))
    flat = load(write_doc, document(input_model={"type": "HfModel", "model_path": "a/b", "task": "x"}))
    assert nested.config.input_model == flat.config.input_model


def test_olive_int4_prefixed_names_are_accepted(write_doc):
    workflow = load(write_doc, document(passes={"b": {"type": "ModelBuilder", "int4_block_size": 128, "int4_accuracy_level": 4}}))
    assert workflow.steps[0].config.block_size == 128
    assert workflow.steps[0].config.accuracy_level == 4
    assert workflow.rewrites == []  # current Olive writes them: aliases, read silently


def test_a_spelling_no_olive_writes_is_an_unknown_key(write_doc):
    doc = document(data_configs=[{"name": "d", "load_dataset_config": {"data_name": "json"}}],
                   passes={"lora": {"type": "LoRA", "train_data_config": "d", "dropout": 0.1}})
    with pytest.raises(DocumentError) as error:
        load(write_doc, doc)
    assert "passes.lora.dropout: unknown key 'dropout' (did you mean 'lora_dropout'?)" in str(error.value)


def test_pass_types_are_case_insensitive_and_keep_document_order(write_doc):
    workflow = load(write_doc, document(passes={"z": {"type": "modelbuilder"}, "a": {"type": "onnxmatmulnbits"}}))
    assert [step.name for step in workflow.steps] == ["z", "a"]
    assert [step.pass_class.name for step in workflow.steps] == ["ModelBuilder", "OnnxMatMulNBits"]


def test_top_level_engine_keys_mean_the_same_as_under_engine(write_doc):
    workflow = load(write_doc, document(output_dir="elsewhere", cache_dir="c"))
    assert workflow.config.engine.output_dir == "elsewhere"
    assert workflow.config.engine.cache_dir == "c"


def test_unknown_pass_parameter_names_path_line_and_suggestion(write_doc):
    doc = document(passes={"builder": {"type": "ModelBuilder", "config": {"precision": "int4", "blok_size": 32}}})
    with pytest.raises(DocumentError) as error:
        load(write_doc, doc)
    message = str(error.value)
    assert "passes.builder.config.blok_size: unknown key 'blok_size' (did you mean 'block_size'?)" in message
    line = json.dumps(doc, indent=2).splitlines().index('        "blok_size": 32') + 1
    assert message.startswith(f"{write_doc(doc)}:{line}: ")


def test_unknown_section_key_in_yaml_names_the_line(write_doc):
    path = write_doc(document(engine={"cache_dir": "c", "outptu_dir": "o"}), "w.yaml")
    with pytest.raises(DocumentError) as error:
        load_workflow(path, REGISTRY)
    line = path.read_text().splitlines().index("  outptu_dir: o") + 1
    assert str(error.value) == f"{path}:{line}: engine.outptu_dir: unknown key 'outptu_dir' (did you mean 'output_dir'?)"


def test_wrong_value_type_names_the_value(write_doc):
    with pytest.raises(DocumentError) as error:
        load(write_doc, document(passes={"b": {"type": "ModelBuilder", "precision": "int3"}}))
    assert "passes.b.precision: Input should be 'int4', 'int8', 'fp16', 'bf16' or 'fp32' (got 'int3')" in str(error.value)


def test_unknown_pass_type_suggests_the_closest(write_doc):
    with pytest.raises(DocumentError) as error:
        load(write_doc, document(passes={"b": {"type": "ModelBilder"}}))
    assert "passes.b.type: unknown pass type 'ModelBilder' (did you mean 'ModelBuilder'?)" in str(error.value)


def test_unknown_model_type_and_missing_field(write_doc):
    with pytest.raises(DocumentError) as error:
        load(write_doc, document(input_model={"type": "HfModel"}))
    assert "input_model.model_path: Field required" in str(error.value)
    with pytest.raises(DocumentError) as error:
        load(write_doc, document(input_model={"type": "TorchModel", "model_path": "x"}))
    assert "input_model" in str(error.value) and "'HfModel', 'OnnxModel'" in str(error.value)


def test_every_problem_is_collected_and_counted(write_doc):
    doc = document(passes={"a": {"type": "Nope"}, "b": {"type": "ModelBuilder", "precision": "int3"}})
    with pytest.raises(DocumentError) as error:
        load(write_doc, doc)
    assert len(error.value.problems) == 2
    assert str(error.value).endswith("(and 1 more problem)")


def test_a_key_given_flat_and_nested_is_an_error(write_doc):
    with pytest.raises(DocumentError, match="'precision' is given both flat and under 'config'"):
        load(write_doc, document(passes={"b": {"type": "ModelBuilder", "precision": "int4", "config": {"precision": "fp32"}}}))


def test_system_references_must_exist(write_doc):
    with pytest.raises(DocumentError, match="engine.target: no system named 'gpu' in 'systems'"):
        load(write_doc, document(engine={"target": "gpu"}))


def test_other_system_types_validate(write_doc):
    systems = {
        "aml": {"type": "AzureML", "config": {"aml_compute": "gpu-cluster",
                "aml_docker_config": {"base_image": "mcr.microsoft.com/x", "conda_file_path": "conda.yaml"},
                "accelerators": [{"device": "gpu", "execution_providers": ["CUDAExecutionProvider"]}]}},
        "env": {"type": "PythonEnvironment", "python_environment_path": "/opt/venv/bin"},
    }
    workflow = load(write_doc, document(systems=systems))
    assert workflow.config.systems["aml"].aml_compute == "gpu-cluster"


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "input_model": {\n    "type": "HfModel",\n  }\n}\n')
    with pytest.raises(OlivepressError, match=rf"^{path}:4:3: malformed JSON: "):
        load_workflow(path, REGISTRY)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input_model:\n  type: HfModel\n  model_path: [unclosed\npasses: {}\n")
    with pytest.raises(OlivepressError, match=rf"^{path}:\d+:\d+: malformed YAML: "):
        load_workflow(path, REGISTRY)


def test_missing_document(tmp_path):
    with pytest.raises(OlivepressError, match="no such file"):
        load_workflow(tmp_path / "nope.json", REGISTRY)
