"""Typed models of the workflow document's sections (everything except the passes' own parameters)."""

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from olivepress.config.base import ConfigModel, TypedSection, flatten_nested
from olivepress.data.params import DataloaderParams, LoadDatasetParams, PreProcessParams

# ---------------------------------------------------------------- input_model


class HfModelConfig(TypedSection):
    type: Literal["HfModel"]
    model_path: str = Field(
        description="A Hugging Face model folder, a hub id found in the local Hugging Face cache, "
        "or a short name of a built-in model such as 'smollm2-135m-instruct'."
    )
    task: str = Field("text-generation", description="The model's task, as in transformers pipelines.")
    adapter_path: str | None = Field(None, description="A PEFT adapter folder to apply on top of the model.")
    load_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for from_pretrained (for example trust_remote_code, torch_dtype).",
    )


class OnnxModelConfig(TypedSection):
    type: Literal["OnnxModel"]
    model_path: str = Field(description="A folder holding the ONNX model (and genai_config.json for GenAI models), or a .onnx file.")
    onnx_file_name: str | None = Field(None, description="The model file inside model_path; default model.onnx.")


InputModelConfig = Annotated[Union[HfModelConfig, OnnxModelConfig], Field(discriminator="type")]

# ---------------------------------------------------------------- systems


class AcceleratorConfig(ConfigModel):
    device: Literal["cpu", "gpu", "npu"] = Field("cpu", description="The kind of device passes run on.")
    execution_providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order of preference; default by device."
    )


def _default_accelerators() -> list[AcceleratorConfig]:
    return [AcceleratorConfig(device="cpu", execution_providers=["CPUExecutionProvider"])]


class LocalSystemConfig(TypedSection):
    type: Literal["LocalSystem"]
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)


class PythonEnvironmentSystemConfig(TypedSection):
    type: Literal["PythonEnvironment"]
    python_environment_path: str = Field(description="The folder holding the environment's python executable.")
    environment_variables: dict[str, str] = Field(default_factory=dict)
    prepend_to_path: list[str] = Field(default_factory=list)
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)


class AzureMLDockerConfig(ConfigModel):
    base_image: str | None = None
    dockerfile: str | None = None
    build_context_path: str | None = None
    conda_file_path: str | None = None


class AzureMLEnvironmentConfig(ConfigModel):
    name: str
    version: str | None = None
    label: str | None = None


class AzureMLSystemConfig(TypedSection):
    type: Literal["AzureML"]
    aml_compute: str = Field(description="The name of the AzureML compute target.")
    aml_docker_config: AzureMLDockerConfig | None = None
    aml_environment_config: AzureMLEnvironmentConfig | None = None
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)
    hf_token: bool = Field(False, description="Pass the Hugging Face token from the workspace key vault to the job.")
    instance_count: int = 1
    tags: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Any] | None = None


SystemConfig = Annotated[
    Union[LocalSystemConfig, PythonEnvironmentSystemConfig, AzureMLSystemConfig], Field(discriminator="type")
]

# ---------------------------------------------------------------- data_configs


class DataComponentConfig(ConfigModel):
    """One stage of a data container. Olive writes its parameters under `params` or flat beside `type`."""

    type: str | None = Field(None, description="The component's type; default is the container's own.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the component.")

    @model_validator(mode="before")
    @classmethod
    def _gather_flat_params(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        flat = {key: value for key, value in data.items() if key not in ("type", "params")}
        if not flat:
            return data
        params = dict(data.get("params") or {})
        for key, value in flat.items():
            if key in params:
                raise ValueError(f"'{key}' is given both flat and under 'params'")
            params[key] = value
        return {**({"type": data["type"]} if "type" in data else {}), "params": params}


class LoadDatasetComponent(DataComponentConfig):
    type: Literal["huggingface_dataset"] | None = Field(None, description="Olive's name of this component; optional.")
    params: LoadDatasetParams = Field(description="Where the records come from.")


class PreProcessComponent(DataComponentConfig):
    type: Literal["text_generation_huggingface_pre_process", "huggingface_pre_process"] | None = Field(
        None, description="Olive's name of this component; optional."
    )
    params: PreProcessParams = Field(default_factory=PreProcessParams, description="How records become token rows.")


class DataloaderComponent(DataComponentConfig):
    type: Literal["default_dataloader"] | None = Field(None, description="Olive's name of this component; optional.")
    params: DataloaderParams = Field(default_factory=DataloaderParams, description="How rows are batched.")


class DataConfig(ConfigModel):
    name: str = Field(description="The name passes and metrics use to refer to this data.")
    type: Literal["HuggingfaceContainer"] = Field(
        "HuggingfaceContainer", description="The container: records through the Hugging Face datasets library."
    )
    load_dataset_config: LoadDatasetComponent = Field(description="Where the records come from.")
    pre_process_data_config: PreProcessComponent = Field(default_factory=PreProcessComponent)
    dataloader_config: DataloaderComponent = Field(default_factory=DataloaderComponent)


# ---------------------------------------------------------------- evaluators


class GoalConfig(ConfigModel):
    type: Literal[
        "threshold", "min-improvement", "max-degradation", "percent-min-improvement", "percent-max-degradation"
    ]
    value: float


class SubMetricConfig(ConfigModel):
    name: str
    priority: int = -1
    higher_is_better: bool | None = None
    goal: GoalConfig | None = None
    metric_config: dict[str, Any] = Field(default_factory=dict)


class MetricConfig(ConfigModel):
    name: str
    type: Literal["accuracy", "latency", "throughput", "perplexity", "size_on_disk", "custom"]
    sub_types: list[SubMetricConfig] = Field(default_factory=list)
    data_config: str | None = None
    user_config: dict[str, Any] = Field(default_factory=dict)
    backend: str | None = None


class EvaluatorConfig(ConfigModel):
    metrics: list[MetricConfig]

# ---------------------------------------------------------------- engine


class SearchStrategyConfig(ConfigModel):
    execution_order: Literal["joint", "pass-by-pass"] = "joint"
    sampler: Literal["sequential", "random", "tpe"] = "sequential"
    max_samples: int = 0
    max_time: float | None = None
    seed: int = 0
    stop_when_goals_met: bool = False
    include_pass_params: bool = True


class EngineConfig(ConfigModel):
    host: str | None = Field(None, description="Name of the system (in `systems`) that runs the engine.")
    target: str | None = Field(None, description="Name of the system (in `systems`) that runs the passes.")
    cache_dir: str = Field(".olivepress-cache", description="The content-addressed cache of pass outputs.")
    output_dir: str = Field("output", description="Where the final model, model_config.json and footprint.json go.")
    log_severity_level: int = Field(2, ge=0, le=4, description="0 verbose, 1 info, 2 warnings (default), 3 errors, 4 critical.")
    evaluate_input_model: bool = Field(True, description="Evaluate the input model when an evaluator is set.")
    evaluator: str | None = Field(None, description="Name of the evaluator (in `evaluators`) that scores the models.")
    clean_cache: bool = Field(False, description="Empty the cache before running.")
    search_strategy: SearchStrategyConfig | bool | None = Field(
        None, description="How to search pass parameters; false or null runs each pass once as written."
    )

# ---------------------------------------------------------------- passes


class PassEntryConfig(ConfigModel):
    """A pass as written in the document; its parameters are checked against the pass's own Config later."""

    model_config = ConfigModel.model_config | {"extra": "allow"}

    type: str = Field(description="A registered pass name, or 'package.module:Class'.")
    config: dict[str, Any] | None = Field(None, description="The pass's parameters (they may also be given flat).")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        return data  # every key besides type/config is a pass parameter, checked by the pass's Config

    def parameters(self) -> dict[str, Any]:
        """The pass parameters, flat."""
        return flatten_nested({**(self.model_extra or {}), "config": self.config or {}})
