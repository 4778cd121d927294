"""Olive's LMEvaluator: lm-evaluation-harness tasks on a Hugging Face model (lm_eval's HFLM on the loaded model) or
on an ONNX model (lm_eval_onnx.OnnxLM: loglikelihoods from olivepress's ONNX decoder, generation with GenAI). Each
number a task reports is a sub-metric named TASK-METRIC (hellaswag-acc), as Olive flattens them."""

import logging
from dataclasses import replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress.config.base import did_you_mean
from olivepress.config.sections import LMEvaluatorConfig
from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.hashing import list_files, sha256_file
from olivepress.models.handles import HfModel, ModelHandle, OnnxModel, PyTorchModel, single_model

if TYPE_CHECKING:
    from olivepress.evaluation.objectives import SubMetric

INSTALL = "pip install olivepress[lmeval]"
SIZE_ON_DISK = "size_on_disk"  # Olive's pseudo-task: the model's bytes


def require_lm_eval() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise OlivepressError(f"evaluator type LMEvaluator runs lm-evaluation-harness, which is not installed: "
                              f"{INSTALL}") from None
    logging.getLogger("lm_eval").setLevel(logging.ERROR)


def task_sub_metrics(config: LMEvaluatorConfig) -> list["SubMetric"]:
    """Every number the tasks report, in the order of the tasks: each task's metrics, then a group's aggregates."""
    from olivepress.evaluation.objectives import SubMetric, sub_metric_name

    require_lm_eval()
    found = [SubMetric(sub_metric_name(SIZE_ON_DISK, "bytes"), SIZE_ON_DISK, "bytes", False)] \
        if SIZE_ON_DISK in config.tasks else []
    loaded = _loaded_tasks(_names(config), _include_paths(config))
    directions: dict[str, bool] = {}
    for task_name, task in loaded["tasks"].items():
        for metric, higher in task.higher_is_better().items():
            directions.setdefault(metric, bool(higher))
            found.append(SubMetric(sub_metric_name(task_name, metric), task_name, metric, bool(higher)))
    for group_name, group in loaded.get("groups", {}).items():
        for aggregate in group.aggregate_metric_list or []:
            metric = aggregate.metric
            found.append(SubMetric(sub_metric_name(group_name, metric), group_name, metric, directions.get(metric, True)))
    return found


def key_material(config: LMEvaluatorConfig) -> dict[str, Any]:
    """What else can change the numbers: the content of the task definitions under include_path (YAML, data and
    code files), and the lm_eval version."""
    definitions = {path: {rel: sha256_file(Path(path) / rel) for rel in list_files(Path(path))}
                   for path in _include_paths(config)}
    try:
        version: str | None = metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        version = None
    return {"task_definitions": definitions, "lm_eval": version}


def measure_tasks(config: LMEvaluatorConfig, model: ModelHandle, accelerator: Accelerator) -> dict[str, dict[str, float]]:
    """The tasks' numbers by task (or group) name, then by metric name."""
    require_lm_eval()
    from lm_eval import simple_evaluate

    numbers: dict[str, dict[str, float]] = {}
    if SIZE_ON_DISK in config.tasks:
        numbers[SIZE_ON_DISK] = _size_on_disk(model, accelerator)
    model = single_model(model, "LMEvaluator")
    names = _names(config)
    if not names:
        return numbers
    loaded = _loaded_tasks(names, _include_paths(config))
    language_model = _language_model(config, model, accelerator, loaded["tasks"])
    results = simple_evaluate(model=language_model, tasks=list(names), task_manager=_task_manager(names, _include_paths(config)),
                              batch_size=config.batch_size, limit=config.limit, bootstrap_iters=config.bootstrap_iters,
                              log_samples=False)
    for task_name, entries in (results or {}).get("results", {}).items():
        for entry, value in entries.items():
            metric = entry.partition(",")[0]  # 'acc,none': the metric, then lm_eval's filter
            if entry != "alias" and not metric.endswith("_stderr") and isinstance(value, int | float):
                numbers.setdefault(task_name, {})[metric] = float(value)
    return numbers


def _size_on_disk(model: ModelHandle, accelerator: Accelerator) -> dict[str, float]:
    from olivepress.evaluation.metrics import MeasureContext, typed_metric
    from olivepress.evaluation.size import measure

    metric = typed_metric({"type": SIZE_ON_DISK, "name": SIZE_ON_DISK})
    return {"bytes": measure(metric, model, None, MeasureContext(accelerator, lambda: None))["bytes"]}  # type: ignore[arg-type]


def _language_model(config: LMEvaluatorConfig, model: HfModel | OnnxModel | PyTorchModel, accelerator: Accelerator,
                    tasks: dict[str, Any]) -> Any:
    if isinstance(model, PyTorchModel):
        raise OlivepressError("LMEvaluator needs the model's tokenizer, which a PyTorchModel does not have; evaluate "
                              "the Hugging Face model it comes from or its ONNX export")
    genai = isinstance(model, OnnxModel) and (model.path / "genai_config.json").is_file()
    fitting = ("hf",) if isinstance(model, HfModel) else ("ort", "ortgenai") if genai else ("ort",)
    if config.model_class not in (None, *fitting):
        kind = "a Hugging Face model" if isinstance(model, HfModel) else "an ONNX Runtime GenAI folder" if genai \
            else "a plain ONNX model"
        raise OlivepressError(f"model_class: '{config.model_class}' does not fit the model, which is {kind} "
                              f"(model_class {' or '.join(fitting)})")
    if isinstance(model, HfModel):
        return _hf_language_model(config, model, accelerator)
    generates = next((name for name, task in tasks.items() if task.OUTPUT_TYPE == "generate_until"), None)
    if generates is not None and not genai:
        raise OlivepressError(f"tasks: task '{generates}' generates text (generate_until), which an ONNX model does "
                              "with ONNX Runtime GenAI only; this one has no genai_config.json (export it with "
                              "ModelBuilder)")
    from olivepress.evaluation.lm_eval_onnx import OnnxLM

    return OnnxLM(model, config.execution_provider or accelerator.execution_provider, config.max_length)


def _hf_language_model(config: LMEvaluatorConfig, model: HfModel, accelerator: Accelerator) -> Any:
    from lm_eval.models.huggingface import HFLM

    from olivepress.evaluation.torch_model import load_for_eval, torch_device
    from olivepress.models.loading import load_tokenizer

    device = torch_device(accelerator if config.device is None else
                          replace(accelerator, device="gpu" if config.device in ("gpu", "cuda") else "cpu"))
    network = load_for_eval(model, device)
    if hasattr(network, "merge_and_unload"):  # a PEFT adapter: HFLM takes a transformers model
        network = network.merge_and_unload()
    return HFLM(pretrained=network, tokenizer=load_tokenizer(model.path), batch_size=config.batch_size,
                max_length=config.max_length, device=device)


def _names(config: LMEvaluatorConfig) -> tuple[str, ...]:
    return tuple(name for name in config.tasks if name != SIZE_ON_DISK)


def _include_paths(config: LMEvaluatorConfig) -> tuple[str, ...]:
    paths = [config.include_path] if isinstance(config.include_path, str) else config.include_path or []
    for path in paths:
        if not Path(path).is_dir():
            raise OlivepressError(f"include_path: '{path}' is not a folder (seen from {Path.cwd()})")
    return tuple(str(Path(path).resolve()) for path in paths)


@cache
def _task_manager(names: tuple[str, ...], include_paths: tuple[str, ...]) -> Any:
    """lm_eval's task index: of include_path alone when it defines every task asked for (indexing lm_eval's own
    thousands of tasks takes seconds), else of both, include_path taking precedence."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    if include_paths:
        local = TaskManager(include_path=list(include_paths), include_defaults=False)
        if all(name in local.all_tasks for name in names):
            return local
    manager = TaskManager(include_path=list(include_paths) or None)
    for name in names:
        if name not in manager.all_tasks and not Path(name).is_file():
            raise OlivepressError(f"tasks: unknown task '{name}'{did_you_mean(name, manager.all_tasks)}; lm_eval "
                                  "has no task, group or tag of that name" + ("" if include_paths else
                                                                              ", and no include_path is given"))
    return manager


@cache
def _loaded_tasks(names: tuple[str, ...], include_paths: tuple[str, ...]) -> Any:
    """lm_eval's tasks and groups, with their documents: loaded once per process for the sub-metric names."""
    if not names:
        return {"tasks": {}}
    try:
        return _task_manager(names, include_paths).load(list(names))
    except (OSError, ValueError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OlivepressError(f"tasks: lm_eval cannot load {', '.join(names)}: {reason}") from error
