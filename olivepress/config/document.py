"""The workflow document: one typed model per section."""

from pydantic import Field

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
    pass_flows: list[list[str]] | None = Field(
        None, min_length=1, description="Olive's pass flows: each a list of names in `passes`, run in its own order "
        "from the input model (a prefix that flows share runs once, through the cache); each flow's output goes to "
        "its own folder in engine.output_dir, named by its passes joined with '-'. Default: one flow of every pass."
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    azureml_client: AzureMLClientConfig | None = Field(
        None, description="The AzureML workspace for AzureML systems, assets and registration."
    )

    @classmethod
    def known_keys(cls) -> list[str]:
        """The sections, and the engine's keys, which a document may also write at the top level (as in Olive)."""
        return [*super().known_keys(), *EngineConfig.known_keys()]

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
