"""The system that runs a workflow's passes (its target)."""

from pathlib import Path

from olivepress.config.sections import (
    AzureMLSystemConfig,
    PythonEnvironmentSystemConfig,
)
from olivepress.hashing import FingerprintMemo
from olivepress.systems.azureml.service import Connect
from olivepress.systems.base import System
from olivepress.workflow.plan import Workflow


def create_target(workflow: Workflow, memo: FingerprintMemo, connect: Connect) -> System:
    """The system that runs the passes. Nothing is contacted here: AzureML connects (through `connect`) at its
    first pass."""
    name, config = workflow.config.target_system()
    if isinstance(config, PythonEnvironmentSystemConfig):
        from olivepress.systems.python_environment import PythonEnvironmentSystem

        return PythonEnvironmentSystem(name, config, Path(workflow.config.engine.cache_dir))
    if isinstance(config, AzureMLSystemConfig) and workflow.config.azureml_host() is None:
        from olivepress.systems.azureml.target import AzureMLSystem

        return AzureMLSystem(name, config, workflow, memo, connect)
    from olivepress.systems.local import LocalSystem

    return LocalSystem(name)
