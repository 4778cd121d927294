"""The workflow document: one typed model per section."""

from typing import Any

from pydantic import Field, model_validator

from olivepress.config.base import ConfigModel
from olivepress.config.sections import (
    AzureMLClientConfig,
    DataConfig,
    EngineConfig,
    EvaluatorConfig,
    InputModelConfig,
    PassEntryConfig,
    SystemConfig,
)


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
