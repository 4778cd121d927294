"""Custom metrics: a function from the user's script, called with the model handle and the metric's data config
(evaluate_func), or with the outputs of the inference loop over that data and its labels (Olive's metric_func)."""

import importlib.util
import numbers
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidatorFunctionWrapHandler, model_validator

from olivepress.config.base import ConfigModel
from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import MeasureContext
from olivepress.models.handles import ModelHandle
from olivepress.user_code import load_script, script_digest, script_path


class CustomUserConfig(ConfigModel):
    added_fields = ("data_dir", "batch_size")  # out of evaluation keys while unset
    user_script: str = Field(description="A Python file (relative to the current directory, else to script_dir) or "
                             "an importable module.")
    script_dir: str | None = Field(None, description="A folder put on sys.path while user_script runs.")
    evaluate_func: str | None = Field(
        None, description="The function called as func(model, data_config, **evaluate_func_kwargs): model is an "
        "olivepress HfModel or OnnxModel, data_config the metric's DataConfig or None. It returns a number "
        "(one sub-metric) or a dict of numbers by sub-metric name. It wins over metric_func."
    )
    evaluate_func_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further keyword arguments.")
    metric_func: str | None = Field(
        None, description="Olive's function over its inference loop: called as func(model_output, targets, "
        "**metric_func_kwargs) after the model ran over the metric's data (see accuracy); model_output has preds "
        "(post-processed) and logits, torch tensors joined over the data. It returns a number or a dict."
    )
    metric_func_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further keyword arguments.")
    data_dir: str | None = Field(
        None, description="Olive 0.2-0.6's call of evaluate_func: with data_dir or batch_size set, evaluate_func is "
        "called as Olive called it, func(model, data_dir, batch_size, device, execution_providers, "
        "**evaluate_func_kwargs) (device 'cpu' or 'gpu', execution_providers a list of one); model is olivepress's "
        "HfModel, OnnxModel or PyTorchModel, not Olive's handler."
    )
    batch_size: int | None = Field(None, gt=0, description="Given to evaluate_func in Olive 0.2-0.6's call (see data_dir).")

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_dataloader_func(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(data, dict) and "dataloader_func" in data:
            raise ValueError("dataloader_func: Olive 0.2-0.5's metric dataloader is not read; name a data config "
                             "whose dataloader_config type is that function (data_config.user_script holds it)")
        return handler(data)

    @model_validator(mode="after")
    def _one_function(self) -> "CustomUserConfig":
        if self.evaluate_func is None and self.metric_func is None:
            raise ValueError("give evaluate_func (it runs the model) or metric_func (it scores the outputs of "
                             "olivepress's inference loop)")
        return self


class CustomMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind((), None, None, False)
    description: ClassVar[str] = "Numbers returned by a function of yours."
    user_config: CustomUserConfig

    def reads_data(self) -> bool:
        """metric_func scores the model's outputs over the metric's data."""
        return self.user_config.evaluate_func is None

    def key_material(self) -> dict[str, Any]:
        """The script's content and the sub-metrics asked for."""
        user = self.user_config
        script = _file_of(user)
        return {"script": script_digest(str(script), user.script_dir) if script is not None and script.is_file()
                else None, "sub_types": [sub.name for sub in self.sub_types]}


def _file_of(user: CustomUserConfig) -> Path | None:
    """The script's file (a path, or where an importable module lies); None when neither is found."""
    try:
        return script_path(user.user_script, user.script_dir, "user_config.user_script")
    except OlivepressError:
        spec = importlib.util.find_spec(user.user_script)
        return Path(spec.origin) if spec is not None and spec.origin else None


def measure(metric: CustomMetricConfig, model: ModelHandle, data_config: DataConfig | None,
            context: MeasureContext) -> dict[str, float]:
    user, sub_types = metric.user_config, [sub.name for sub in metric.sub_types]
    if user.evaluate_func is not None:
        function = _function(user, user.evaluate_func, "evaluate_func")
        if {"data_dir", "batch_size"} & user.model_fields_set:  # Olive 0.2-0.6's call
            accelerator = context.accelerator
            result = function(model, _local(user.data_dir), user.batch_size, accelerator.device,
                              [accelerator.execution_provider], **user.evaluate_func_kwargs)
        else:
            result = function(model, data_config, **user.evaluate_func_kwargs)
    else:
        from olivepress.evaluation.inference import run_inference

        assert user.metric_func is not None and data_config is not None  # the configs' validators demand them
        output, targets = run_inference(model, data_config, context.accelerator)
        result = _function(user, user.metric_func, "metric_func")(output, targets, **user.metric_func_kwargs)
    field, name = ("evaluate_func", user.evaluate_func) if user.evaluate_func else ("metric_func", user.metric_func)
    if isinstance(result, numbers.Real) and len(sub_types) == 1:
        result = {sub_types[0]: result}
    if not isinstance(result, dict):
        raise OlivepressError(f"user_config.{field}: {name} returned {type(result).__name__}; "
                              f"return a dict of numbers by sub-metric ({', '.join(sub_types)})")
    missing = [name for name in sub_types if not isinstance(result.get(name), numbers.Real)]
    if missing:
        raise OlivepressError(f"user_config.{field}: {name} returned no number for '{missing[0]}'")
    return {name: float(result[name]) for name in sub_types}


def _local(data_dir: str | None) -> str | None:
    if data_dir is not None and data_dir.startswith("azureml:"):
        raise OlivepressError(f"user_config.data_dir: {data_dir} is an AzureML datastore path, which olivepress does "
                              "not download for evaluate_func; download it and give the local folder")
    return data_dir


def _function(user: CustomUserConfig, name: str, field: str) -> Any:
    script = _file_of(user)
    if script is None:
        raise OlivepressError(f"user_config.user_script: {user.user_script}: no such file or importable module")
    return load_script(str(script), user.script_dir, "user_config.user_script").function(name, f"user_config.{field}")
