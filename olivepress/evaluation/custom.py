"""Custom metrics: a function from the user's script, called with the model handle and the metric's data config."""

import importlib
import importlib.util
import numbers
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from olivepress.config.base import ConfigModel
from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import MeasureContext
from olivepress.hashing import sha256_file
from olivepress.models.handles import ModelHandle


class CustomUserConfig(ConfigModel):
    user_script: str = Field(description="A Python file (relative to the current directory) or an importable module.")
    evaluate_func: str = Field(
        description="The function called as func(model, data_config, **evaluate_func_kwargs): model is an "
        "olivepress HfModel or OnnxModel, data_config the metric's DataConfig or None. It returns a number "
        "(one sub-metric) or a dict of numbers by sub-metric name."
    )
    evaluate_func_kwargs: dict[str, Any] = Field(default_factory=dict, description="Further keyword arguments.")


class CustomMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind((), None, None, False)
    description: ClassVar[str] = "Numbers returned by a function of yours."
    user_config: CustomUserConfig

    def key_material(self) -> dict[str, Any]:
        """The script's content and the sub-metrics asked for."""
        script = script_file(self.user_config)
        return {"script": sha256_file(script) if script is not None and script.is_file() else None,
                "sub_types": [sub.name for sub in self.sub_types]}


def script_file(user: CustomUserConfig) -> Path | None:
    """The script's file: a path, or where the module is found; its content is part of the evaluation key."""
    path = Path(user.user_script)
    if path.suffix == ".py" or path.is_file():
        return path.resolve()
    spec = importlib.util.find_spec(user.user_script)
    return Path(spec.origin) if spec is not None and spec.origin else None


def measure(metric: CustomMetricConfig, model: ModelHandle, data_config: DataConfig | None,
            context: MeasureContext) -> dict[str, float]:
    user, sub_types = metric.user_config, [sub.name for sub in metric.sub_types]
    function = _function(user)
    result = function(model, data_config, **user.evaluate_func_kwargs)
    if isinstance(result, numbers.Real) and len(sub_types) == 1:
        result = {sub_types[0]: result}
    if not isinstance(result, dict):
        raise OlivepressError(f"user_config.evaluate_func: {user.evaluate_func} returned {type(result).__name__}; "
                              f"return a dict of numbers by sub-metric ({', '.join(sub_types)})")
    missing = [name for name in sub_types if not isinstance(result.get(name), numbers.Real)]
    if missing:
        raise OlivepressError(f"user_config.evaluate_func: {user.evaluate_func} returned no number for '{missing[0]}'")
    return {name: float(result[name]) for name in sub_types}


def _function(user: CustomUserConfig) -> Any:
    path = Path(user.user_script)
    try:
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise OlivepressError(f"user_config.user_script: {path}: no such file")
            spec = importlib.util.spec_from_file_location(f"olivepress_user_metric_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise ImportError("not a Python source file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(user.user_script)
    except ImportError as error:
        raise OlivepressError(f"user_config.user_script: cannot import {user.user_script}: {error}") from None
    function = getattr(module, user.evaluate_func, None)
    if not callable(function):
        raise OlivepressError(f"user_config.evaluate_func: {user.user_script} has no function '{user.evaluate_func}'")
    return function
