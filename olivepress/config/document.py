"""The workflow document: one typed model per section."""

from typing import Any

from pydantic import Field, model_validator

from olivepress.config.base import ConfigModel
from olivepress.config.sections import (
    AzureMLClientConfig,
    AzureMLSystemConfig,
    DataConfig,
    EngineConfig,
    EvaluatorConfig,
    InputModelConfig,
    LocalSystemConfig,
    PassEntryConfig,
    SystemConfig,
)
from olivepress.hardware import Accelerator, resolve_accelerator

LOCAL = "local"  # the name of the implicit local system when the document names none


class WorkflowConfig(ConfigModel):
    """A whole workflow document, as read from JSON or YAML."""

    workflow_id: str = Field("default_workflow", description="A name for this workflow, used in logs and reports.")
    input_model: InputModelConfig
    systems: dict[str, SystemConfig] = Field(default_factory=dict)
    data_configs: list[DataConfig] = Field(default_factory=list)
    evaluators: dict[str, EvaluatorConfig] = Field(default_factory=dict)
    passes: dict[str, PassEntryConfig] = Field(
        default_factory=dict, description="The passes, run in the order written."
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    azureml_client: AzureMLClientConfig | None = Field(
        None, description="The AzureML workspace for AzureML systems, assets and registration."
    )

    @model_validator(mode="before")
    @classmethod
    def _hoist_engine_keys(cls, data: Any) -> Any:
        """Current Olive documents may write engine options at the top level; they mean the same."""
        if not isinstance(data, dict):
            return data
        top_level = [key for key in EngineConfig.model_fields if key in data]
        if not top_level:
            return data
        engine = dict(data.get("engine") or {})
        for key in top_level:
            if key in engine:
                raise ValueError(f"'{key}' is given both at the top level and under 'engine'")
            engine[key] = data[key]
        return {**{k: v for k, v in data.items() if k not in top_level}, "engine": engine}

    def target_system(self) -> tuple[str, SystemConfig]:
        """The system that runs the passes: engine.target; else the host when it is AzureML (the job runs the
        passes); else the first LocalSystem; else an implicit local CPU system."""
        engine = self.engine
        if engine.target is not None:
            return engine.target, self.systems[engine.target]
        if engine.host is not None and isinstance(self.systems[engine.host], AzureMLSystemConfig):
            return engine.host, self.systems[engine.host]
        for name, system in self.systems.items():
            if isinstance(system, LocalSystemConfig):
                return name, system
        return LOCAL, LocalSystemConfig(type="LocalSystem")

    def azureml_host(self) -> tuple[str, AzureMLSystemConfig] | None:
        """(name, system) when engine.host is an AzureML system: then the whole workflow runs as one job."""
        name = self.engine.host
        system = self.systems.get(name) if name else None
        return (name, system) if name and isinstance(system, AzureMLSystemConfig) else None

    def accelerator(self) -> Accelerator:
        """The accelerator of the target system's first accelerator entry."""
        _, system = self.target_system()
        first = system.accelerators[0]
        return resolve_accelerator(first.device, first.execution_providers)
