"""Loading a workflow document: parse, validate every section and every pass's parameters."""

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from olivepress.config.base import did_you_mean
from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import DocumentError, error_lines
from olivepress.config.migration import migrate
from olivepress.config.source import DocPath, SourceDocument, read_document
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import typed_metric
from olivepress.passes.registry import PassRegistry
from olivepress.plugins import Registry
from olivepress.workflow.checks import search_problems
from olivepress.workflow.plan import PassStep, Workflow


def load_workflow(file: Path, registry: PassRegistry,
                  strategy_registries: Mapping[str, Registry[Any]] = MappingProxyType({})) -> Workflow:
    return validate_document(read_document(file), registry, strategy_registries)


def validate_document(source: SourceDocument, registry: PassRegistry,
                      strategy_registries: Mapping[str, Registry[Any]] = MappingProxyType({})) -> Workflow:
    """Migrate older Olive shapes, then validate; every problem found is reported, the first in the message.
    `strategy_registries` (from the engine: the sampler and executor names) lets the search strategy's
    names be checked too; without it they are checked when the search starts."""
    migration = migrate(source.data)
    old_keys = [source.located(old.path, old.message) for old in migration.old_keys]
    source = replace(source, data=migration.document)
    try:
        config = WorkflowConfig.model_validate(source.data)
    except ValidationError as error:
        raise DocumentError(old_keys + error_lines(error, source, source.data)) from None
    metric_problems = _type_metrics(config, source)
    if metric_problems:
        raise DocumentError(old_keys + metric_problems)
    problems: list[str] = list(old_keys)
    steps = []
    for name, entry in config.passes.items():
        try:
            steps.append(_resolve_pass(name, entry.type, entry.parameters(), source, registry))
        except DocumentError as error:
            problems.extend(error.problems)
        except (OlivepressError, ValueError) as error:
            problems.append(source.located(("passes", name), str(error)))
    problems.extend(_check_references(config, steps, source, registry, strategy_registries))
    problems.extend(_check_systems(config, source))
    if problems:
        raise DocumentError(problems)
    return Workflow(config=config, steps=steps, source=source, registry=registry, rewrites=migration.rewrites)


def _resolve_pass(name: str, type_name: str, params: dict[str, Any], source: SourceDocument,
                  registry: PassRegistry) -> PassStep:
    try:
        pass_class = registry.get(type_name)
    except OlivepressError as error:
        raise DocumentError([source.located(("passes", name, "type"), str(error))]) from None
    try:
        config = pass_class.Config.model_validate(params)
    except ValidationError as error:

        def place(path: tuple) -> tuple:
            return (*_pass_param_path(source, name, path[0]), *path[1:]) if path else ("passes", name)

        raise DocumentError(error_lines(error, source, params, place)) from None
    return PassStep(name=name, pass_class=pass_class, config=config)


def _type_metrics(config: WorkflowConfig, source: SourceDocument) -> list[str]:
    """Validate each metric as its registered type's config, in place; the problems found, located."""
    problems = []
    for name, evaluator in config.evaluators.items():
        typed = []
        for index, entry in enumerate(source.data["evaluators"][name]["metrics"]):
            path = ("evaluators", name, "metrics", index)
            try:
                typed.append(typed_metric(entry))
            except ValidationError as error:
                problems.extend(error_lines(error, source, entry, _under(path)))
            except OlivepressError as error:
                problems.append(source.located((*path, "type"), str(error)))
        config.evaluators[name] = evaluator.model_copy(update={"metrics": typed})
    return problems


def _under(at: DocPath) -> Callable[[DocPath], DocPath]:
    """Maps a path inside the part of the document at `at` to its path in the whole document."""
    return lambda inner: (*at, *inner)


def _check_references(config: WorkflowConfig, steps: list[PassStep], source: SourceDocument,
                      registry: PassRegistry, strategy_registries: Mapping[str, Registry[Any]]) -> list[str]:
    """Names that point elsewhere in the document must exist there."""
    problems = []
    data_names = [data.name for data in config.data_configs]
    for index, name in enumerate(data_names):
        if name in data_names[:index]:
            problems.append(source.located(("data_configs", index, "name"), f"data config name '{name}' is used twice"))
    for step in steps:
        for param, name in step.config.data_config_names().items():
            if name not in data_names:
                problems.append(source.located(_pass_param_path(source, step.name, param),
                                         f"no data config named '{name}' in 'data_configs'{did_you_mean(name, data_names)}"))
    for key in ("host", "target"):
        system = getattr(config.engine, key)
        if system is not None and system not in config.systems:
            problems.append(source.located(("engine", key), f"no system named '{system}' in 'systems'"))
    evaluator = config.engine.evaluator
    if evaluator is not None and evaluator not in config.evaluators:
        problems.append(source.located(("engine", "evaluator"), f"no evaluator named '{evaluator}' in 'evaluators'"))
    search = search_problems(config, steps, registry, strategy_registries)
    problems.extend(source.located(path, message) for path, message in search)
    return problems


def _check_systems(config: WorkflowConfig, source: SourceDocument) -> list[str]:
    """The host runs the engine: LocalSystem or AzureML (one job for the whole workflow). A PythonEnvironment
    runs passes only, so it can be the target of a local host but of no AzureML job."""
    systems, host, target = config.systems, config.engine.host, config.engine.target
    host_type = systems[host].type if host in systems else "LocalSystem"
    problems = []
    if host_type == "PythonEnvironment":
        problems.append(source.located(("engine", "host"), f"system '{host}' is a PythonEnvironment, which runs "
                                                             "passes, not the engine: name it in engine.target"))
    if host_type == "AzureML" and target in systems and systems[target].type == "PythonEnvironment":
        problems.append(source.located(("engine", "target"), f"system '{target}' is a PythonEnvironment, which "
                                                               f"the AzureML job of host '{host}' cannot reach"))
    return problems


def _pass_param_path(source: SourceDocument, pass_name: str, field: str) -> tuple:
    """Where a pass parameter was written: flat, or under the entry's `config`."""
    entry = source.data["passes"][pass_name]
    nested = isinstance(entry.get("config"), dict) and field in entry["config"]
    return ("passes", pass_name, *(("config",) if nested else ()), field)

