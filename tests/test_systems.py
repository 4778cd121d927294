"""Choosing systems: which one runs the engine and which the passes, and what a document may not combine."""

import pytest

from olivepress.config.errors import DocumentError
from olivepress.config.sections import AzureMLSystemConfig
from olivepress.passes.registry import PassRegistry
from olivepress.systems.azureml.environment import job_environment
from olivepress.workflow.loader import load_workflow

REGISTRY = PassRegistry.builtin()
AML = {"type": "AzureML", "aml_compute": "gpu-cluster", "aml_environment_config": {"name": "olivepress", "label": "latest"},
       "accelerators": [{"device": "gpu"}]}
ENV = {"type": "PythonEnvironment", "python_environment_path": "/opt/venv"}


def load(write_doc, systems: dict, **engine):
    doc = {"input_model": {"type": "HfModel", "model_path": "some/model"}, "systems": systems, "engine": engine}
    return load_workflow(write_doc(doc), REGISTRY)


def test_the_target_is_engine_target_else_an_azureml_host_else_local(write_doc):
    assert load(write_doc, {"aml": AML}).config.target_system()[0] == "local"
    assert load(write_doc, {"aml": AML}, host="aml").config.target_system()[0] == "aml"
    workflow = load(write_doc, {"aml": AML, "env": ENV}, target="aml")
    assert workflow.config.target_system()[0] == "aml"
    accelerator = workflow.config.accelerator()
    assert (accelerator.device, accelerator.execution_provider) == ("gpu", "CUDAExecutionProvider")


def test_systems_that_cannot_play_their_role_are_document_errors(write_doc):
    with pytest.raises(DocumentError, match=r"engine\.host: system 'env' is a PythonEnvironment, which runs passes, "
                                            r"not the engine: name it in engine\.target"):
        load(write_doc, {"env": ENV}, host="env")
    with pytest.raises(DocumentError, match=r"engine\.target: system 'env' is a PythonEnvironment, which the AzureML "
                                            r"job of host 'aml' cannot reach"):
        load(write_doc, {"aml": AML, "env": ENV}, host="aml", target="env")
    with pytest.raises(DocumentError,
                       match=r"systems\.aml\.aml_environment_config: give either aml_docker_config or aml_environment_config"):
        load(write_doc, {"aml": {"type": "AzureML", "aml_compute": "gpu-cluster"}})
    with pytest.raises(DocumentError, match=r"aml_environment_config: give either version or label"):
        load(write_doc, {"aml": {**AML, "aml_environment_config": {"name": "olivepress"}}})


def test_a_registered_environment_is_referenced_by_version_or_label():
    assert job_environment("aml", AzureMLSystemConfig.model_validate(AML)) == "azureml:olivepress@latest"
    pinned = {**AML, "aml_environment_config": {"name": "olivepress", "version": "3"}}
    assert job_environment("aml", AzureMLSystemConfig.model_validate(pinned)) == "azureml:olivepress:3"
