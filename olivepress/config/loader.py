"""Loading a workflow document: parse, validate every section and every pass's parameters."""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from olivepress.config.base import did_you_mean
from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import error_lines, format_path
from olivepress.config.migration import Rewrite, migrate
from olivepress.config.source import SourceDocument, read_document
from olivepress.engine.search.checks import search_problems
from olivepress.errors import OlivepressError
from olivepress.passes.base import Pass, PassConfig
from olivepress.passes.registry import PassRegistry


class DocumentError(OlivepressError):
    """The document is invalid. The message is the first problem; `problems` holds them all."""

    def __init__(self, problems: list[str]):
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems


@dataclass(frozen=True)
class PassStep:
    """A pass as the engine runs it: its name in the document, its class and its validated parameters."""

    name: str
    pass_class: type[Pass]
    config: PassConfig


@dataclass(frozen=True)
class Workflow:
    config: WorkflowConfig
    steps: list[PassStep]
    source: SourceDocument  # the migrated document, with the file and key lines of the one written
    rewrites: list[Rewrite] = field(default_factory=list)  # how older Olive shapes were rewritten

    def rewrite_lines(self) -> list[str]:
        """One line per rewrite: where the older shape was, and what it became."""
        return [_located(self.source, rewrite.path, rewrite.message) for rewrite in self.rewrites]


def load_workflow(file: Path, registry: PassRegistry) -> Workflow:
    return validate_document(read_document(file), registry)


def validate_document(source: SourceDocument, registry: PassRegistry) -> Workflow:
    """Migrate older Olive shapes, then validate; every problem found is reported, the first in the message."""
    migration = migrate(source.data)
    old_keys = [_located(source, old.path, old.message) for old in migration.old_keys]
    source = replace(source, data=migration.document)
    try:
        config = WorkflowConfig.model_validate(source.data)
    except ValidationError as error:
        raise DocumentError(old_keys + error_lines(error, source, source.data)) from None
    problems: list[str] = list(old_keys)
    steps = []
    for name, entry in config.passes.items():
        try:
            steps.append(_resolve_pass(name, entry.type, entry.parameters(), source, registry))
        except DocumentError as error:
            problems.extend(error.problems)
        except (OlivepressError, ValueError) as error:
            problems.append(_located(source, ("passes", name), str(error)))
    problems.extend(_check_references(config, steps, source))
    problems.extend(_check_systems(config, source))
    if problems:
        raise DocumentError(problems)
    return Workflow(config=config, steps=steps, source=source, rewrites=migration.rewrites)


def _resolve_pass(name: str, type_name: str, params: dict[str, Any], source: SourceDocument,
                  registry: PassRegistry) -> PassStep:
    try:
        pass_class = registry.get(type_name)
    except OlivepressError as error:
        raise DocumentError([_located(source, ("passes", name, "type"), str(error))]) from None
    try:
        config = pass_class.Config.model_validate(params)
    except ValidationError as error:

        def place(path: tuple) -> tuple:
            return (*_pass_param_path(source, name, path[0]), *path[1:]) if path else ("passes", name)

        raise DocumentError(error_lines(error, source, params, place)) from None
    return PassStep(name=name, pass_class=pass_class, config=config)


def _check_references(config: WorkflowConfig, steps: list[PassStep], source: SourceDocument) -> list[str]:
    """Names that point elsewhere in the document must exist there."""
    problems = []
    data_names = [data.name for data in config.data_configs]
    for index, name in enumerate(data_names):
        if name in data_names[:index]:
            problems.append(_located(source, ("data_configs", index, "name"), f"data config name '{name}' is used twice"))
    for step in steps:
        for param, name in step.config.data_config_names().items():
            if name not in data_names:
                problems.append(_located(source, _pass_param_path(source, step.name, param),
                                         f"no data config named '{name}' in 'data_configs'{did_you_mean(name, data_names)}"))
    for key in ("host", "target"):
        system = getattr(config.engine, key)
        if system is not None and system not in config.systems:
            problems.append(_located(source, ("engine", key), f"no system named '{system}' in 'systems'"))
    evaluator = config.engine.evaluator
    if evaluator is not None and evaluator not in config.evaluators:
        problems.append(_located(source, ("engine", "evaluator"), f"no evaluator named '{evaluator}' in 'evaluators'"))
    problems.extend(_located(source, path, message) for path, message in search_problems(config, steps))
    return problems


def _check_systems(config: WorkflowConfig, source: SourceDocument) -> list[str]:
    """The host runs the engine: LocalSystem or AzureML (one job for the whole workflow). A PythonEnvironment
    runs passes only, so it can be the target of a local host but of no AzureML job."""
    systems, host, target = config.systems, config.engine.host, config.engine.target
    host_type = systems[host].type if host in systems else "LocalSystem"
    problems = []
    if host_type == "PythonEnvironment":
        problems.append(_located(source, ("engine", "host"), f"system '{host}' is a PythonEnvironment, which runs "
                                                             "passes, not the engine: name it in engine.target"))
    if host_type == "AzureML" and target in systems and systems[target].type == "PythonEnvironment":
        problems.append(_located(source, ("engine", "target"), f"system '{target}' is a PythonEnvironment, which "
                                                               f"the AzureML job of host '{host}' cannot reach"))
    return problems


def _pass_param_path(source: SourceDocument, pass_name: str, field: str) -> tuple:
    """Where a pass parameter was written: flat, or under the entry's `config`."""
    entry = source.data["passes"][pass_name]
    nested = isinstance(entry.get("config"), dict) and field in entry["config"]
    return ("passes", pass_name, *(("config",) if nested else ()), field)


def _located(source: SourceDocument, path: tuple, message: str) -> str:
    line = source.line_of(path)
    return f"{source.file}{f':{line}' if line else ''}: {format_path(path)}: {message}"
