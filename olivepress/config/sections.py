"""Typed models of the workflow document's sections (everything except the passes' own parameters)."""

from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import Discriminator, Field, Tag, ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator

from olivepress.config.base import (
    ConfigModel,
    TypedSection,
    did_you_mean,
    flatten_nested,
)
from olivepress.config.data_params import (
    DUMMY_DEFAULTS,
    OLIVE_UNREAD_PRE_PROCESS,
    DataloaderParams,
    DummyDataParams,
    LoadDatasetParams,
    PreProcessParams,
)

# ---------------------------------------------------------------- input_model


class ModelSection(TypedSection):
    """The keys every Olive model type has."""

    generative: bool = Field(
        False, description="Olive's switch of its inference loop between the model's forward (false) and generate() "
        "(true). Read as it is: olivepress's metrics call what they measure (perplexity the forward, accuracy with a "
        "prompt_template generate())."
    )


class HfModelConfig(ModelSection):
    kind: ClassVar[str] = "hf"  # the model kind passes accept and produce (models.handles.ModelKind)
    type: Literal["HfModel"]
    model_path: str = Field(
        description="A Hugging Face model folder, a hub id (downloaded into the Hugging Face cache unless it is there), "
        "an AzureML model, or a short name of a built-in model such as 'smollm2-135m-instruct'."
    )
    revision: str | None = Field(
        None, description="The hub revision of a hub id: a branch, tag or commit; default main. The commit it resolves "
        "to is part of the model's cache key and of footprint.json."
    )
    model_file_format: Literal["PyTorch.MLflow"] | None = Field(
        None, description="Olive's file format: 'PyTorch.MLflow' reads the Hugging Face folder inside an MLflow model "
        "(MLmodel, with the folder its transformers flavor names, or data/model)."
    )
    task: str = Field("text-generation", description="The model's task, as in transformers pipelines.")
    adapter_path: str | None = Field(None, description="A PEFT adapter folder to apply on top of the model.")
    load_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for from_pretrained (for example trust_remote_code, torch_dtype).",
    )
    io_config: "IoConfigOrFunction | None" = Field(
        None, description="The graph's inputs and outputs when OnnxConversion exports this model (a pass's own "
        "io_config wins), or the name of a function of model_script that returns them (called with the model "
        "handle); default derived from the task."
    )
    model_class: str | None = Field(
        None, description="The transformers class that loads the model (e.g. LlamaForCausalLM) instead of the "
        "task's Auto class."
    )
    model_script: str | None = Field(
        None, description="The Python file holding the io_config and dummy_inputs_func functions that OnnxConversion "
        "calls (Olive 0.2-0.6's PyTorchModel with hf_config and model_script becomes such an HfModel); passes that make "
        "a new Hugging Face model from this one keep them, as Olive 0.6 did."
    )
    script_dir: str | None = Field(None, description="A folder put on sys.path while model_script runs.")
    dummy_inputs_func: str | None = Field(
        None, description="A function of model_script returning OnnxConversion's example inputs (a tensor, a tuple in "
        "io_config's input order, or a dict by input name), called with the model handle."
    )

    @model_validator(mode="after")
    def _functions_need_script(self) -> "HfModelConfig":
        named = [key for key, value in (("io_config", self.io_config if isinstance(self.io_config, str) else None),
                                        ("dummy_inputs_func", self.dummy_inputs_func)) if value is not None]
        if named and self.model_script is None:
            raise ValueError(f"{named[0]}: names a function of model_script, which is not given: give model_script, "
                             "the file that holds it" + (" (or io_config as a mapping)" if named[0] == "io_config" else ""))
        return self

    @field_validator("model_class")
    @classmethod
    def _is_transformers_class(cls, value: str | None) -> str | None:
        import transformers

        if value is not None and not hasattr(transformers, value):
            raise ValueError(f"transformers has no class '{value}'")
        return value


InputType = Literal["int64", "int32", "float32", "float16", "bfloat16"]


class IoConfig(ConfigModel):
    """The inputs and outputs of an exported graph (Olive's io_config)."""

    input_names: list[str] = Field(description="The graph's inputs, in order; each is a keyword of the model's forward.")
    input_shapes: list[list[int]] | None = Field(
        None, description="The shape of each input's example tensor for tracing; default [2, 8] for every input."
    )
    input_types: list[InputType] | None = Field(None, description="The element type of each input; default int64.")
    output_names: list[str] = Field(
        description="The graph's outputs: keys of the model's output (e.g. logits), else its first outputs in order."
    )
    output_shapes: list[list[int]] | None = Field(
        None, description="The shape of each output. Checked against output_names, as in Olive; the exported graph's "
        "output shapes are the model's (Olive does not use them for export either)."
    )
    output_types: list[InputType] | None = Field(None, description="The element type of each output; checked likewise.")
    dynamic_axes: dict[str, dict[int, str]] | None = Field(
        None, description="Symbolic axes by input/output name, e.g. {input_ids: {0: batch, 1: sequence}}."
    )
    kv_cache: bool | dict[str, Any] = Field(
        False, description="Olive's past key/value inputs, true or a mapping of their names and axes (ort_past_key_name, "
        "...). With true, OnnxConversion of a Hugging Face causal LM adds past_key_values.N.key/value inputs and "
        "present.N.key/value outputs; a mapping, or a PyTorchModel, is refused when the model is exported."
    )

    @model_validator(mode="after")
    def _one_shape_and_type_per_name(self) -> "IoConfig":
        for field, names in (("input_shapes", "input_names"), ("input_types", "input_names"),
                             ("output_shapes", "output_names"), ("output_types", "output_names")):
            values, named = getattr(self, field), getattr(self, names)
            if values is not None and len(values) != len(named):
                raise ValueError(f"{field} has {len(values)} entries but {names} has {len(named)}")
        return self


def _io_config_kind(value: Any) -> str:
    return "str" if isinstance(value, str) else "IoConfig"


# io_config as a mapping, or the name of a function of model_script: one member is validated, so that a bad mapping's
# problems are not echoed by "Input should be a valid string"
IoConfigOrFunction = Annotated[Annotated[IoConfig, Tag("IoConfig")] | Annotated[str, Tag("str")],
                               Discriminator(_io_config_kind)]


class PyTorchModelConfig(ModelSection):
    kind: ClassVar[str] = "pytorch"
    type: Literal["PyTorchModel"]
    model_path: str | None = Field(
        None, description="A .pt/.pth file holding the whole module (torch.save), or what model_loader is given "
        "(a folder or a hub id)."
    )
    model_loader: str | None = Field(
        None, description="A function of model_script, called as model_loader(model_path), that returns the "
        "torch.nn.Module."
    )
    model_script: str | None = Field(None, description="The Python file that holds model_loader and the functions named below.")
    script_dir: str | None = Field(None, description="A folder put on sys.path while model_script runs.")
    io_config: "IoConfigOrFunction | None" = Field(
        None, description="The graph's inputs and outputs for OnnxConversion, or the name of a function of "
        "model_script that returns them (called with the model handle)."
    )
    dummy_inputs_func: str | None = Field(
        None, description="A function of model_script returning the example inputs for export (a tensor, tuple or "
        "dict), called with the model handle; default from io_config's shapes and types."
    )

    @model_validator(mode="after")
    def _loader_or_file(self) -> "PyTorchModelConfig":
        if self.model_loader is None and self.model_path is None:
            raise ValueError("give model_loader (with model_script) or model_path (a .pt file)")
        functions = {"model_loader": self.model_loader, "dummy_inputs_func": self.dummy_inputs_func,
                     "io_config": self.io_config if isinstance(self.io_config, str) else None}
        named = [key for key, value in functions.items() if value is not None]
        if named and self.model_script is None:
            raise ValueError(f"{named[0]} names a function: give model_script, the file that holds it")
        return self


class OnnxModelConfig(ModelSection):
    kind: ClassVar[str] = "onnx"
    type: Literal["OnnxModel"]
    model_path: str = Field(
        description="A folder holding the ONNX model (and genai_config.json for GenAI models), or a .onnx file."
    )
    onnx_file_name: str | None = Field(None, description="The model file inside model_path; default model.onnx.")


InputModelConfig = Annotated[HfModelConfig | OnnxModelConfig | PyTorchModelConfig, Field(discriminator="type")]

# ---------------------------------------------------------------- systems


class AcceleratorConfig(ConfigModel):
    device: Literal["cpu", "gpu", "npu"] = Field("cpu", description="The kind of device passes run on (any case).")
    execution_providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order of preference; default by device."
    )

    @field_validator("device", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def _default_accelerators() -> list[AcceleratorConfig]:
    return [AcceleratorConfig(device="cpu", execution_providers=["CPUExecutionProvider"])]


class LocalSystemConfig(TypedSection):
    type: Literal["LocalSystem"]
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)


class PythonEnvironmentSystemConfig(TypedSection):
    type: Literal["PythonEnvironment"]
    python_environment_path: str | None = Field(
        None, description="The environment's folder (a venv or conda prefix), its bin/ folder, or its python "
        "executable; olivepress must be installed in it. Not given with olive_managed_env."
    )
    olive_managed_env: bool = Field(
        False, description="Olive 0.6's environment built for the system: olivepress builds a virtual environment of "
        "the running interpreter that sees the running environment's packages, installs requirements_file into it with "
        "pip, and keeps it under cache_dir/environments, reused while the file's content is the same."
    )
    requirements_file: str | None = Field(
        None, description="With olive_managed_env: the pip requirements file installed into the environment (its "
        "relative paths are read from its folder)."
    )
    environment_variables: dict[str, str] = Field(
        default_factory=dict, description="Variables set for the pass's process, on top of the current environment."
    )
    prepend_to_path: list[str] = Field(default_factory=list, description="Folders put in front of PATH for the pass's process.")
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)

    @model_validator(mode="after")
    def _path_or_managed(self) -> "PythonEnvironmentSystemConfig":
        if self.olive_managed_env and self.python_environment_path is not None:
            raise ValueError("python_environment_path: olive_managed_env builds the environment; give one of them")
        if not self.olive_managed_env and self.python_environment_path is None:
            raise ValueError("python_environment_path: Field required (or olive_managed_env: true with a "
                             "requirements_file)")
        if not self.olive_managed_env and self.requirements_file is not None:
            raise ValueError("requirements_file: read with olive_managed_env: true only")
        return self


class AzureMLDockerConfig(ConfigModel):
    """An environment built for the job: a base image plus a conda file, or a Docker build context."""

    base_image: str | None = Field(None, description="The Docker image, e.g. mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04.")
    dockerfile: str | None = Field(None, description="The Dockerfile inside build_context_path; default 'Dockerfile'.")
    build_context_path: str | None = Field(None, description="A local folder to build the image from (instead of base_image).")
    conda_file_path: str | None = Field(
        None, description="A conda environment file installed on top of base_image; it must install olivepress."
    )
    name: str | None = Field(None, description="A name for the built environment; default: anonymous.")
    version: str | None = Field(None, description="A version for the named environment.")

    @model_validator(mode="after")
    def _one_image_source(self) -> "AzureMLDockerConfig":
        if (self.base_image is None) == (self.build_context_path is None):
            raise ValueError("give either base_image or build_context_path")
        if self.dockerfile is not None and self.build_context_path is None:
            raise ValueError("dockerfile needs build_context_path (the folder it is built in)")
        return self


class AzureMLEnvironmentConfig(ConfigModel):
    """An environment registered in the workspace."""

    name: str = Field(description="The registered environment's name.")
    version: str | None = Field(None, description="Its version; or give label.")
    label: str | None = Field(None, description="Its label, e.g. 'latest'; or give version.")

    @model_validator(mode="after")
    def _version_or_label(self) -> "AzureMLEnvironmentConfig":
        if (self.version is None) == (self.label is None):
            raise ValueError("give either version or label")
        return self


class AzureMLSystemConfig(TypedSection):
    type: Literal["AzureML"]
    aml_compute: str = Field(description="The name of the AzureML compute target (a compute cluster).")
    aml_docker_config: AzureMLDockerConfig | None = Field(None, description="Build the job's environment from an image.")
    aml_environment_config: AzureMLEnvironmentConfig | None = Field(None, description="Use a registered environment.")
    accelerators: list[AcceleratorConfig] = Field(default_factory=_default_accelerators)
    hf_token: bool = Field(
        False, description="Give the job the workspace key vault's Hugging Face token (the secret 'hf-token', as in "
        "Olive) as HF_TOKEN, so that it can download gated or private hub models."
    )
    install_olivepress: bool = Field(
        True, description="Install this olivepress (a wheel built from it, staged as a job input) and the extras the "
        "passes need in the job before its command; false when the environment already has olivepress."
    )
    instance_count: int = Field(1, ge=1, description="Nodes the job runs on.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags put on every job.")
    resources: dict[str, Any] | None = Field(
        None, description="The job's resources (instance_type, shm_size, properties), as in azure-ai-ml's "
        "JobResourceConfiguration."
    )

    @field_validator("aml_environment_config")
    @classmethod
    def _one_environment(cls, value: AzureMLEnvironmentConfig | None, info: ValidationInfo) -> AzureMLEnvironmentConfig | None:
        # a field validator (not a model one), so that the error names a key of the document
        if "aml_docker_config" in info.data and (info.data["aml_docker_config"] is None) == (value is None):
            raise ValueError("give either aml_docker_config or aml_environment_config (the job's environment)")
        return value


SystemConfig = Annotated[
    LocalSystemConfig | PythonEnvironmentSystemConfig | AzureMLSystemConfig, Field(discriminator="type")
]


class AzureMLClientConfig(ConfigModel):
    """The AzureML workspace and how to sign in (Olive's `azureml_client`). Unset details come from the
    environment (AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME) or a config.json."""

    subscription_id: str | None = Field(None, description="The Azure subscription id.")
    resource_group: str | None = Field(None, description="The workspace's resource group.")
    workspace_name: str | None = Field(None, description="The AzureML workspace.")
    aml_config_path: str | None = Field(
        None, description="A config.json as the portal or `az ml` writes it; default ./config.json or ./.azureml/config.json."
    )
    read_timeout: int = Field(300, gt=0, description="Seconds to wait for one answer of the service.")
    max_operation_retries: int = Field(3, ge=0, description="Retries of a service call that failed to connect.")
    operation_retry_interval: float = Field(5, ge=0, description="Seconds between those retries.")
    default_auth_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of azure-identity's DefaultAzureCredential, e.g. "
        "exclude_interactive_browser_credential."
    )
    keyvault_name: str | None = Field(
        None, description="The key vault holding the 'hf-token' secret for systems with hf_token; default the workspace's."
    )

# ---------------------------------------------------------------- data_configs


class DataComponentConfig(ConfigModel):
    """One stage of a data container. Olive writes its parameters under `params` or flat beside `type`."""

    type: str | None = Field(None, description="The component's type; default is the container's own.")
    # Each component declares its own typed parameters model; Any lets the subclasses narrow it.
    params: Any = Field(default_factory=dict, description="Keyword arguments of the component.")

    @model_validator(mode="wrap")
    @classmethod
    def _gather_flat_params(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # a wrap validator, so that the flat keys are gathered before the unknown-key check sees them
        if not isinstance(data, dict):
            return handler(data)
        flat = {key: value for key, value in data.items() if key not in cls.model_fields}
        if not flat:
            return handler(data)
        params = dict(data.get("params") or {})
        for key, value in flat.items():
            if key in params:
                raise ValueError(f"'{key}' is given both flat and under 'params'")
            params[key] = value
        return handler({**{key: value for key, value in data.items() if key in cls.model_fields}, "params": params})


class LoadDatasetComponent(DataComponentConfig):
    type: str | None = Field(
        None, description="huggingface_dataset (the built-in loader, the default), or a function of the data "
        "config's user_script called as func(**params) that returns the records."
    )
    params: LoadDatasetParams = Field(default_factory=LoadDatasetParams, description="Where the records come from.")


class PreProcessComponent(DataComponentConfig):
    type: str | None = Field(
        None, description="text_generation_huggingface_pre_process or huggingface_pre_process (the built-in, the "
        "default), or a function of user_script called as func(records, **params) that returns the records."
    )
    params: PreProcessParams = Field(default_factory=PreProcessParams, description="How records become token rows.")


class DataloaderComponent(DataComponentConfig):
    added_fields = ("call",)  # out of the data's fingerprint while it is "records"

    type: str | None = Field(
        None, description="default_dataloader (the built-in, the default), or a function of user_script called as "
        "func(records, **params) that returns an iterable of batches."
    )
    params: DataloaderParams = Field(default_factory=DataloaderParams, description="How rows are batched.")
    call: Literal["records", "data_dir"] = Field(
        "records", description="How a function of user_script is called. records: func(records, **params). "
        "data_dir: as Olive 0.2-0.6 called a pass's or metric's dataloader_func, func(data_dir, batch_size, "
        "**other params), data_dir being load_dataset_config's (None without one), and, when a model is evaluated "
        "or timed, model_framework='ONNX' or 'PyTorch' as a keyword too (Olive's metrics passed it). Migrating "
        "dataloader_func writes this."
    )

    @model_validator(mode="after")
    def _call_names_a_function(self) -> "DataloaderComponent":
        if self.call == "data_dir" and self.type in BUILTIN_COMPONENTS["dataloader_config"]:
            raise ValueError("call: data_dir calls a dataloader function of user_script; name it in type")
        return self


class PostProcessComponent(DataComponentConfig):
    type: str | None = Field(
        None, description="How accuracy turns each batch's model output into predictions: "
        "text_classification_post_process (the best class of each row; HuggingfaceContainer's default), "
        "ner_post_process (of each token), text_generation_post_process (the logits), post_process (unchanged; "
        "DataContainer's default), or a function of user_script called as func(model_output, **params)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the function.")


# The built-in component types, by component (None: the default). Any other type names a user_script function.
BUILTIN_COMPONENTS = {
    "load_dataset_config": (None, "huggingface_dataset"),
    "pre_process_data_config": (None, "text_generation_huggingface_pre_process", "huggingface_pre_process"),
    "dataloader_config": (None, "default_dataloader"),
    "post_process_data_config": (None, "text_classification_post_process", "ner_post_process",
                                 "text_generation_post_process", "post_process"),
}
DATA_CONTAINERS = ("HuggingfaceContainer", "DataContainer", *DUMMY_DEFAULTS, "RawDataContainer")


class DataConfig(ConfigModel):
    name: str = Field(description="The name passes and metrics use to refer to this data.")
    type: Literal[DATA_CONTAINERS] = Field(  # type: ignore[valid-type]
        "HuggingfaceContainer", description="HuggingfaceContainer (or DataContainer): records through the Hugging Face "
        "datasets library or the user_script's functions. The Transformers*DummyDataContainer types: rows of token "
        "ids for latency and throughput, shaped by load_dataset_config's seq_len, past_seq_len, max_samples."
    )
    user_script: str | None = Field(
        None, description="A Python file whose functions the components name by their type (Olive's registry "
        "decorators are understood); its content is part of the data's fingerprint."
    )
    script_dir: str | None = Field(None, description="A folder put on sys.path while user_script runs.")
    load_dataset_config: LoadDatasetComponent = Field(
        default_factory=LoadDatasetComponent, description="Where the records come from."
    )
    pre_process_data_config: PreProcessComponent = Field(default_factory=PreProcessComponent)
    post_process_data_config: PostProcessComponent = Field(default_factory=PostProcessComponent)
    dataloader_config: DataloaderComponent = Field(default_factory=DataloaderComponent)

    @model_validator(mode="after")
    def _check_components(self) -> "DataConfig":
        if self.type == "RawDataContainer":
            raise ValueError("type: RawDataContainer (Olive 0.6+, raw binary tensors) is not read by olivepress; "
                             "write a load_dataset function in a user_script that returns the rows instead")
        for field, builtins in BUILTIN_COMPONENTS.items():
            component = getattr(self, field)
            if component.type not in builtins and self.user_script is None:
                raise ValueError(f"{field}.type: '{component.type}' is not a built-in component "
                                 f"({', '.join(b for b in builtins if b) or 'none'}); it names a function of "
                                 "user_script, which the data config does not give")
            extra = component.params.model_extra if isinstance(component.params, ConfigModel) else None
            if field == "pre_process_data_config":
                extra = {key: value for key, value in (extra or {}).items() if key not in OLIVE_UNREAD_PRE_PROCESS}
            if component.type in builtins and extra and not self.is_dummy():
                key = next(iter(extra))
                raise ValueError(f"{field}.params: unknown key '{key}'"
                                 f"{did_you_mean(key, type(component.params).known_keys())}")
        if self.is_dummy():
            self.dummy_params()
        elif self.type == "HuggingfaceContainer" and self.load_dataset_config.type in BUILTIN_COMPONENTS[
                "load_dataset_config"] and self.load_dataset_config.params.data_name is None:
            raise ValueError("load_dataset_config.params.data_name: the built-in loader needs data_name "
                             "(a file format or a hub dataset)")
        return self

    def is_dummy(self) -> bool:
        return self.type in DUMMY_DEFAULTS

    def dummy_params(self) -> DummyDataParams:
        """A dummy container's parameters (Olive's defaults for its type under what the document sets)."""
        params = self.load_dataset_config.params.model_dump(exclude_unset=True)
        return DummyDataParams.model_validate({**DUMMY_DEFAULTS[self.type], **params})

    def user_function(self, field: str) -> str | None:
        """The user_script function a component names, or None for a built-in one."""
        component_type = getattr(self, field).type
        return None if component_type in BUILTIN_COMPONENTS[field] else component_type


# ---------------------------------------------------------------- evaluators

RELATIVE_GOALS = ("min-improvement", "max-degradation", "percent-min-improvement", "percent-max-degradation")


class GoalConfig(ConfigModel):
    type: Literal[
        "threshold", "min-improvement", "max-degradation", "percent-min-improvement", "percent-max-degradation"
    ] = Field(
        description="threshold: at least `value` (at most, when lower is better). The others compare with the input "
        "model's value: better by at least `value` (min-improvement) or worse by at most `value` (max-degradation), "
        "in the metric's unit or, for percent-*, in percent of the input model's value."
    )
    value: float = Field(description="The threshold, or the improvement or degradation (>= 0) in the goal's unit.")

    @model_validator(mode="after")
    def _relative_goals_are_not_negative(self) -> "GoalConfig":
        if self.type in RELATIVE_GOALS and self.value < 0:
            raise ValueError(f"value: a {self.type} goal is a size, so it cannot be negative (got {self.value})")
        return self


class SubMetricConfig(ConfigModel):
    name: str = Field(
        description="The number to report: accuracy_score, f1_score, precision, recall, auroc (accuracy, "
        "torch_metrics), accuracy, f1, precision, recall (accuracy, huggingface_metrics), accuracy_score or "
        "exact_match (accuracy by generated answers), perplexity, avg/min/max/p50/p90/"
        "p95/p99 (latency in seconds per request, throughput in generated tokens per second), bytes or mb "
        "(size_on_disk), or a name the custom function returns."
    )
    priority: int = Field(
        -1, description="Rank among the search objectives, 1 first; -1 reports the number without optimizing it. "
        "When no sub-metric of the evaluator has a priority, all of them are objectives, in the order written."
    )
    higher_is_better: bool | None = Field(
        None, description="Default: true for accuracy and throughput, false for the others; custom metrics must say."
    )
    goal: GoalConfig | None = Field(None, description="What a candidate must reach to be kept.")
    metric_config: dict[str, Any] = Field(
        default_factory=dict, description="Options of the sub-metric's backend: torch_metrics' task (binary, "
        "multiclass, multilabel), num_classes, num_labels, average, ignore_index; huggingface_metrics' "
        "compute_params (average, pos_label) and result_key."
    )


class MetricKind(NamedTuple):
    """What a metric type reports, declared by its config class."""

    sub_types: tuple[str, ...]  # empty: any name (custom metrics)
    default_sub_type: str | None
    higher_is_better: bool | None  # None: the document must say
    needs_data: bool


class MetricConfig(ConfigModel):
    """A metric as written. When the document is loaded, the metric registry validates it again as its type's
    own config: a subclass that declares `metric_kind` and types `user_config`."""

    metric_kind: ClassVar[MetricKind | None] = None  # None: the type is not resolved yet

    type: str = Field(description="A registered metric type, or 'package.module:attr' naming a MetricType.")
    name: str = Field(description="The metric's name; its numbers go by NAME-SUBTYPE, e.g. ppl-perplexity.")
    sub_types: list[SubMetricConfig] = Field(
        default_factory=list, description="The numbers to report; default: the metric type's main one."
    )
    data_config: str | None = Field(None, description="The data_configs entry the metric reads.")
    user_config: Any = Field(None, description="The metric type's options.")
    backend: Literal["torch_metrics", "huggingface_metrics"] | None = Field(
        None, description="Olive's library for accuracy sub-metrics, whose definitions olivepress computes: "
        "torch_metrics (the default: accuracy_score, f1_score, precision, recall, auroc) or huggingface_metrics "
        "(evaluate's accuracy, f1, precision, recall)."
    )

    @model_validator(mode="after")
    def _check_sub_types_and_data(self) -> "MetricConfig":
        kind = self.metric_kind
        if kind is None:
            return self
        names = [sub.name for sub in self.sub_types]
        if not names and kind.default_sub_type is None:
            raise ValueError(f"sub_types: a {self.type} metric must list its sub-metrics (each with higher_is_better)")
        for index, name in enumerate(names):
            if kind.sub_types and name not in kind.sub_types:
                raise ValueError(f"sub_types[{index}].name: a {self.type} metric has no sub-metric '{name}'"
                                 f"{did_you_mean(name, list(kind.sub_types))}; it has {', '.join(kind.sub_types)}")
            if name in names[:index]:
                raise ValueError(f"sub_types[{index}].name: '{name}' is listed twice")
            if kind.higher_is_better is None and self.sub_types[index].higher_is_better is None:
                raise ValueError(f"sub_types[{index}].higher_is_better: a {self.type} metric must say which way is better")
        if self.reads_data() and self.data_config is None:
            raise ValueError(f"data_config: a {self.type} metric reads data; name a data_configs entry")
        return self

    def reads_data(self) -> bool:
        """Whether the metric needs a data config (its kind's default; a subclass may decide by its options)."""
        return self.metric_kind is not None and self.metric_kind.needs_data

    def key_material(self) -> dict[str, Any]:
        """What else, besides the type, options and data, can change this metric's numbers (evaluation key)."""
        return {}


# Olive's evaluator types that olivepress does not run: (the Olive versions that have it, what it needs).
REFUSED_EVALUATORS = {
    "MTEBEvaluator": ("Olive after 0.9.2", "the MTEB embedding benchmark, which olivepress does not include; run mteb "
                      "on the output model"),
}


class EvaluatorConfig(ConfigModel):
    type: Literal["OliveEvaluator"] | None = Field(
        None, description="Olive's evaluator type; OliveEvaluator (the default) runs the metrics, LMEvaluator "
        "lm-evaluation-harness tasks (its own keys). MTEBEvaluator is refused, naming what to use instead."
    )
    metrics: list[MetricConfig] = Field(min_length=1, description="What to measure, in this order.")

    @model_validator(mode="wrap")
    @classmethod
    def _by_evaluator_type(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # a wrap validator, so that one line says why instead of a line per unknown key of the evaluator
        kind = data.get("type") if isinstance(data, dict) else None
        if kind in REFUSED_EVALUATORS:
            versions, what = REFUSED_EVALUATORS[kind]
            raise ValueError(f"type: {kind} ({versions}) runs {what}")
        if kind == "LMEvaluator" and cls is EvaluatorConfig:
            return LMEvaluatorConfig.model_validate(data)
        return handler(data)

    @model_validator(mode="after")
    def _check_names_and_priorities(self) -> "EvaluatorConfig":
        names = [metric.name for metric in self.metrics]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"metrics[{index}].name: metric name '{name}' is used twice")
        seen: dict[int, str] = {}
        for metric in self.metrics:
            for sub in metric.sub_types:
                if sub.priority == -1:
                    continue
                if sub.priority < 1:
                    raise ValueError(f"{metric.name}-{sub.name}: priority must be 1 or more, or -1 (got {sub.priority})")
                if sub.priority in seen:
                    raise ValueError(f"{metric.name}-{sub.name}: priority {sub.priority} is also given to {seen[sub.priority]}")
                seen[sub.priority] = f"{metric.name}-{sub.name}"
        return self


class LMEvaluatorConfig(EvaluatorConfig):
    """Olive's LMEvaluator: lm-evaluation-harness tasks (olivepress[lmeval]), each of whose metrics is a sub-metric
    named TASK-METRIC (hellaswag-acc), as Olive names them."""

    type: Literal["LMEvaluator"]  # type: ignore[assignment]
    metrics: list[MetricConfig] = Field(default_factory=list, max_length=0,
                                        description="An LMEvaluator's numbers are its tasks' metrics.")
    tasks: list[str] = Field(
        min_length=1, description="lm-evaluation-harness task, group or tag names (hellaswag, arc_easy, mmlu), or task "
        "YAML files; 'size_on_disk' adds the model's bytes, as in Olive."
    )
    include_path: str | list[str] | None = Field(
        None, description="olivepress: folder(s) of your own task YAML files (lm_eval's --include_path), relative to "
        "the current directory; their tasks may read local data files. Their content is part of the evaluation key."
    )
    batch_size: int = Field(1, gt=0, description="Requests per forward.")
    limit: int | float | None = Field(
        None, gt=0, description="Documents per task: a count, or below 1 a fraction of the task's documents."
    )
    max_length: int | None = Field(
        None, gt=0, description="Tokens per request, truncated from the left (default: the model's maximum length)."
    )
    model_class: Literal["hf", "ort", "ortgenai"] | None = Field(
        None, description="hf: a Hugging Face model in torch; ort / ortgenai: an ONNX model (folder with "
        "genai_config.json for ortgenai). Default: by the model."
    )
    device: Literal["cpu", "gpu", "cuda"] | None = Field(
        None, description="Where a Hugging Face model runs; default: the accelerator's device."
    )
    execution_provider: str | None = Field(
        None, description="The ONNX Runtime execution provider of an ONNX model; default: the accelerator's."
    )
    bootstrap_iters: int = Field(100000, ge=0, description="lm_eval's bootstrap iterations for the stderr of "
                                 "metrics that are not means (0: none).")

# ---------------------------------------------------------------- engine


class SearchStrategyConfig(ConfigModel):
    execution_order: Literal["joint", "pass-by-pass"] = Field(
        "joint", description="joint: each candidate sets every searched parameter of every pass. pass-by-pass: the "
        "passes are searched one at a time, in order, each from the best model of the search before it."
    )
    sampler: str = Field(
        "sequential", description="sequential: every point, in order. random: points in a seeded random order, none "
        "twice. tpe: optuna's Tree-structured Parzen Estimator, steered by the objectives (olivepress[search]). "
        "Or a sampler a plugin registers, or 'package.module:Class'."
    )
    max_samples: int = Field(0, ge=0, description="The most candidates to try (in each stage of pass-by-pass); 0: no limit.")
    max_time: float | None = Field(None, gt=0, description="Seconds after which no new candidate starts.")
    seed: int = Field(0, description="Seed of the random and tpe samplers.")
    stop_when_goals_met: bool = Field(False, description="Stop (the stage) at the first candidate that meets every goal.")
    include_pass_params: bool = Field(
        True, description="Also search each pass's own default space for the parameters that the document leaves "
        "unset (ModelBuilder: block_size, algo_config, accuracy_level; AWQ/GPTQ/RTN: group_size; ...)."
    )
    search_space: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="Values to try, by pass (its name in `passes`) and parameter, e.g. "
        "{'builder': {'block_size': [32, 64, 128]}}. These override the document's value. The key 'type' lists "
        "alternative pass types for the step, each run with the step's other parameters."
    )
    objectives: list[str] | None = Field(
        None, description="The sub-metrics (NAME-SUBTYPE, e.g. ppl-perplexity) to optimize, most important first. "
        "Default: by the evaluator's priorities."
    )
    executor: str = Field(
        "local", description="Where candidates run: local worker processes, or tasks on a Ray cluster (olivepress[ray]). "
        "Or an executor a plugin registers, or 'package.module:attr'."
    )
    num_workers: int = Field(
        1, ge=1, description="Candidates run at once: local worker processes (1: in the engine's own process), or Ray "
        "tasks in flight."
    )
    ray_address: str | None = Field(
        None, description="The Ray cluster ('auto', 'ray://head:10001'); default: a local Ray instance started for the "
        "run and stopped after it. Every node must see the cache folder and the data at the same paths."
    )


class EngineConfig(ConfigModel):
    host: str | None = Field(None, description="Name of the system (in `systems`) that runs the engine.")
    target: str | None = Field(None, description="Name of the system (in `systems`) that runs the passes.")
    cache_dir: str = Field(".olivepress-cache", description="The content-addressed cache of pass outputs.")
    shared_cache_dir: str | None = Field(
        None, description="A cache others write (a network drive), read but never written: its intact entries "
        "are used; passes it lacks are built into cache_dir. Whoever can write it decides what runs receive; "
        "see docs/cache.md."
    )
    output_dir: str = Field(
        "output", description="Where the final model, model_config.json and footprint.json go; null means the default."
    )
    log_severity_level: int = Field(2, ge=0, le=4, description="0 verbose, 1 info, 2 warnings (default), 3 errors, 4 critical.")
    ort_log_severity_level: int = Field(
        3, ge=0, le=4, description="ONNX Runtime's C++ log level while passes and metrics run: 0 verbose, 1 info, "
        "2 warnings, 3 errors (default), 4 fatal."
    )
    ort_py_log_severity_level: int = Field(
        3, ge=0, le=4, description="The level of ONNX Runtime's Python logger ('onnxruntime'), with the same numbers."
    )
    log_to_file: bool = Field(
        False, description="Also write the log into olivepress-<time>.log in the current folder."
    )
    no_artifacts: bool = Field(
        False, description="Run the passes (their outputs stay in the cache) but write no output folder."
    )
    plot_pareto_frontier: bool = Field(
        False, description="Olive's switch for its pareto chart; read as it is: olivepress's search always writes "
        "report.md with pareto.png beside the best model."
    )
    clean_evaluation_cache: bool = Field(False, description="Forget the cached metric values before running.")
    evaluate_input_model: bool = Field(True, description="Evaluate the input model when an evaluator is set.")
    evaluator: str | None = Field(None, description="Name of the evaluator (in `evaluators`) that scores the models.")
    clean_cache: bool = Field(False, description="Empty the cache before running.")
    search_strategy: SearchStrategyConfig | bool | None = Field(
        None, description="How to search pass parameters; false or null runs each pass once as written."
    )

    @field_validator("output_dir", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        # Olive's templates write null for "not set"
        return cls.model_fields["output_dir"].default if value is None else value

# ---------------------------------------------------------------- passes


class PassEntryConfig(ConfigModel):
    """A pass as written in the document; its parameters are checked against the pass's own Config later."""

    model_config = ConfigModel.model_config | {"extra": "allow"}

    type: str = Field(description="A registered pass name, or 'package.module:Class'.")
    config: dict[str, Any] | None = Field(None, description="The pass's parameters (they may also be given flat).")

    def parameters(self) -> dict[str, Any]:
        """The pass parameters, flat."""
        return flatten_nested({**(self.model_extra or {}), "config": self.config or {}})
