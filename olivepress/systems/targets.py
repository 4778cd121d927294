"""Choosing the systems of a workflow: the host runs the engine, the target runs the passes."""

from olivepress.config.document import WorkflowConfig
from olivepress.config.loader import Workflow
from olivepress.config.sections import (
    AzureMLSystemConfig,
    LocalSystemConfig,
    PythonEnvironmentSystemConfig,
    SystemConfig,
)
from olivepress.engine.fingerprint import FingerprintMemo
from olivepress.systems.base import System

LOCAL = "local"  # the name of the implicit local system when the document names none


def target_config(config: WorkflowConfig) -> tuple[str, SystemConfig]:
    """engine.target; else the host when it is AzureML (the job runs the passes); else the first LocalSystem."""
    engine = config.engine
    if engine.target is not None:
        return engine.target, config.systems[engine.target]
    if engine.host is not None and isinstance(config.systems[engine.host], AzureMLSystemConfig):
        return engine.host, config.systems[engine.host]
    for name, system in config.systems.items():
        if isinstance(system, LocalSystemConfig):
            return name, system
    return LOCAL, LocalSystemConfig(type="LocalSystem")


def azureml_host(config: WorkflowConfig) -> tuple[str, AzureMLSystemConfig] | None:
    """(name, system) when engine.host is an AzureML system: then the whole workflow runs as one job."""
    name = config.engine.host
    system = config.systems.get(name) if name else None
    return (name, system) if isinstance(system, AzureMLSystemConfig) else None


def create_target(workflow: Workflow, cache_root, memo: FingerprintMemo) -> System:
    """The system that runs the passes. Nothing is contacted here: AzureML connects at its first pass."""
    name, config = target_config(workflow.config)
    if isinstance(config, PythonEnvironmentSystemConfig):
        from olivepress.systems.python_environment import PythonEnvironmentSystem

        return PythonEnvironmentSystem(name, config, cache_root, workflow.config.azureml_client)
    if isinstance(config, AzureMLSystemConfig) and azureml_host(workflow.config) is None:
        from olivepress.systems.azureml.target import AzureMLSystem

        return AzureMLSystem(name, config, workflow, memo)
    from olivepress.systems.local import LocalSystem

    return LocalSystem(name)
