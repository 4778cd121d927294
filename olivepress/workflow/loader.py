"""Loading a workflow document: migrate, validate every section and every pass, check references and files.

Every stage runs whatever the stages before it found, so that one round reports every problem: a section that
fails is left out of the later checks (which then say nothing about it), not the reason to stop.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin

from pydantic import ValidationError

from olivepress.config.base import did_you_mean
from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import DocumentError, Problem, problems_of
from olivepress.config.migration import Migration, migrate
from olivepress.config.sections import LMEvaluatorConfig, PassEntryConfig
from olivepress.config.source import DocPath, SourceDocument, read_document
from olivepress.errors import OlivepressError
from olivepress.evaluation.metrics import typed_metric
from olivepress.passes.registry import PassRegistry
from olivepress.plugins import Registry
from olivepress.workflow.checks import flow_problems, search_problems
from olivepress.workflow.plan import PassStep, Workflow, chain_problem

# Checks of what the document names on this machine (files, folders, environments), from a higher layer.
LocalChecks = Callable[[WorkflowConfig, dict[str, Any]], list[Problem]]
NAMED_SECTIONS = ("systems", "evaluators", "passes")  # mappings of entries the document names
STAND_IN_MODEL = {"type": "HfModel", "model_path": "stand-in/model"}  # a hub id: checked for its shape only
SEARCH_HINT = "a list of values is a search: give one value, or list them in engine.search_strategy.search_space"


def load_workflow(file: Path, registry: PassRegistry,
                  strategy_registries: Mapping[str, Registry[Any]] = MappingProxyType({}),
                  local_checks: LocalChecks | None = None) -> Workflow:
    return validate_document(read_document(file), registry, strategy_registries, local_checks)


def validate_document(source: SourceDocument, registry: PassRegistry,
                      strategy_registries: Mapping[str, Registry[Any]] = MappingProxyType({}),
                      local_checks: LocalChecks | None = None) -> Workflow:
    """Migrate older Olive shapes, then validate; every problem found is reported, in document order, each at the
    key as the user wrote it. `strategy_registries` (from the engine: the sampler and executor names) lets the
    search strategy's names be checked too; `local_checks` checks the files and environments the document names."""
    migration = migrate(source.data)
    migrated = replace(source, data=migration.document)
    found = [Problem(old.path, old.message) for old in migration.old_keys]
    written = len(found)  # the problems before this index are at paths as written; the others at migrated paths
    config, stand_in = _validate_sections(migration.document, found)
    steps, all_passes = _resolve_passes(migrated, registry, found)
    all_passes = all_passes and not stand_in  # passes cannot be chained from an input model that failed
    if config is not None:
        found.extend(_type_metrics(config, migrated))
        found.extend(_check_references(config, steps, migrated))
        found.extend(_check_systems(config))
        found.extend(flow_problems(config, steps, all_passes))
        found.extend(search_problems(config, steps, registry, strategy_registries, _names(migrated, "data_configs"),
                                     all_passes))
        if all_passes and config.pass_flows is None:
            unchained = chain_problem(config.input_model.kind, steps, config.engine.evaluator)
            found.extend([unchained] if unchained is not None else [])
        if local_checks is not None:
            found.extend(local_checks(config, migrated.data))
    if found:
        raise DocumentError(_lines(source, migration, found, written))
    assert config is not None  # no problem means the sections validated
    return Workflow(config=config, steps=steps, source=migrated, registry=registry, rewrites=migration.rewrites)


def _lines(source: SourceDocument, migration: Migration, found: list[Problem], written: int) -> list[str]:
    """Each problem located at the key as written, in the order of the document's lines; those that an older key or
    a placeholder causes (at the paths it covers) are left out: it is the root cause."""
    covered = [path for old in migration.old_keys for path in old.covers]
    placed = [problem if index < written else Problem(migration.written(problem.path), problem.message)
              for index, problem in enumerate(found)]
    placed = [problem for index, problem in enumerate(placed)
              if index < written or not any(problem.path[:len(path)] == path for path in covered)]
    unique = list(dict.fromkeys(placed))
    unique.sort(key=lambda problem: source.line_of(problem.path) or 0)
    return [source.located(problem.path, problem.message) for problem in unique]


def _validate_sections(data: dict[str, Any], found: list[Problem]) -> tuple[WorkflowConfig | None, bool]:
    """The document's sections, and whether the input model is a stand-in. Where some sections fail, their problems
    are recorded and the sections without them validated again (an input model that failed replaced by a stand-in,
    so that the checks of the other sections still run); None when even that fails."""
    stand_in = False
    for _ in range(3):  # an entry left out can only make problems of others disappear; two rounds settle it
        try:
            return WorkflowConfig.model_validate(data), stand_in
        except ValidationError as error:
            found.extend(problem for problem in problems_of(error, data) if problem not in found)
            data = _without(data, [item["loc"] for item in error.errors()])
            if "input_model" not in data:
                data["input_model"], stand_in = STAND_IN_MODEL, True
    return None, stand_in


def _without(data: dict[str, Any], locations: list[tuple]) -> dict[str, Any]:
    """`data` without the sections, or the entries of named sections and lists, that the error locations are in."""
    data = dict(data)
    for loc in locations:
        top = loc[0] if loc else None
        section = data.get(top) if isinstance(top, str) else None
        entry = loc[1] if len(loc) > 1 else None
        if top in NAMED_SECTIONS and isinstance(section, dict) and entry in section:
            data[top] = {name: value for name, value in section.items() if name != entry}
        elif top == "data_configs" and isinstance(section, list) and isinstance(entry, int) and entry < len(section):
            data[top] = [item for index, item in enumerate(section) if index != entry]
        elif top in data:
            del data[top]
    return data


def _resolve_passes(source: SourceDocument, registry: PassRegistry,
                    found: list[Problem]) -> tuple[list[PassStep], bool]:
    """The steps of the passes whose entries are well-formed, and whether every pass resolved."""
    passes = source.data.get("passes")
    if not isinstance(passes, dict):
        return [], passes is None
    steps = []
    for name, entry in passes.items():
        try:
            entry_config = PassEntryConfig.model_validate(entry)
            steps.append(_resolve_pass(name, entry_config.type, entry_config.parameters(), source, registry))
        except ValidationError:
            continue  # the section's validation reported it
        except DocumentProblems as problems:
            found.extend(problems.problems)
        except (OlivepressError, ValueError) as error:
            found.append(Problem(("passes", name), str(error)))
    return steps, len(steps) == len(passes)


class DocumentProblems(Exception):
    """Problems of one part of the document, raised to the stage that collects them."""

    def __init__(self, problems: list[Problem]):
        super().__init__(problems[0].message)
        self.problems = problems


def _resolve_pass(name: str, type_name: str, params: dict[str, Any], source: SourceDocument,
                  registry: PassRegistry) -> PassStep:
    try:
        pass_class = registry.get(type_name)
    except OlivepressError as error:
        raise DocumentProblems([Problem(("passes", name, "type"), str(error))]) from None
    try:
        config = pass_class.Config.model_validate(params)
    except ValidationError as error:

        def place(path: DocPath) -> DocPath:
            return (*_pass_param_path(source, name, str(path[0])), *path[1:]) if path else ("passes", name)

        fields = pass_class.Config.keys_of_fields()
        searched = [key for key, value in params.items()
                    if isinstance(value, list) and key in fields
                    and not _takes_list(pass_class.Config.model_fields[fields[key]].annotation)]
        raise DocumentProblems(_searches_first(problems_of(error, params, place), searched, source, name)) from None
    return PassStep(name=name, pass_class=pass_class, config=config)


def _takes_list(annotation: Any) -> bool:
    """Whether a field's type holds a list anywhere (`list[str] | None` does), so a list given for it is a value."""
    if get_origin(annotation) in (list, tuple, set, frozenset, Sequence):
        return True
    return any(_takes_list(argument) for argument in get_args(annotation))


def _searches_first(problems: list[Problem], searched: list[str], source: SourceDocument,
                    name: str) -> list[Problem]:
    """A list given for a parameter that takes one value is a search written in the wrong place: say that, once,
    instead of what the value is not."""
    searches = {_pass_param_path(source, name, key): key for key in searched}
    kept, said = [], set()
    for problem in problems:
        if problem.path in searches:
            if problem.path not in said:
                said.add(problem.path)
                kept.append(Problem(problem.path, f"{SEARCH_HINT}.{name}.{searches[problem.path]} "
                                                  "(with engine.evaluator to compare them)"))
        else:
            kept.append(problem)
    return kept


def _type_metrics(config: WorkflowConfig, source: SourceDocument) -> list[Problem]:
    """Validate each metric as its registered type's config, in place; the problems found, located."""
    problems = []
    for name, evaluator in config.evaluators.items():
        if isinstance(evaluator, LMEvaluatorConfig):
            continue  # its numbers are its tasks' metrics, not typed metrics
        typed = []
        for index, entry in enumerate(source.data["evaluators"][name]["metrics"]):
            path = ("evaluators", name, "metrics", index)
            try:
                typed.append(typed_metric(entry))
            except ValidationError as error:
                problems.extend(problems_of(error, entry, _under(path)))
            except OlivepressError as error:
                problems.append(Problem((*path, "type"), str(error)))
        config.evaluators[name] = evaluator.model_copy(update={"metrics": typed})
    return problems


def _under(at: DocPath) -> Callable[[DocPath], DocPath]:
    """Maps a path inside the part of the document at `at` to its path in the whole document."""
    return lambda inner: (*at, *inner)


def _names(source: SourceDocument, section: str) -> list[str]:
    """The names the document gives in a section, valid entries or not (a reference to an invalid one is not a
    second problem)."""
    value = source.data.get(section)
    if section == "data_configs":
        items = value if isinstance(value, list) else []
        return [item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)]
    return list(value) if isinstance(value, dict) else []


def _check_references(config: WorkflowConfig, steps: list[PassStep], source: SourceDocument) -> list[Problem]:
    """Names that point elsewhere in the document must exist there."""
    problems = []
    data_names = _names(source, "data_configs")
    raw = source.data.get("data_configs")
    seen: set[str] = set()
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in seen:
            problems.append(Problem(("data_configs", index, "name"), f"data config name '{name}' is used twice"))
        if isinstance(name, str):
            seen.add(name)
    for step in steps:
        for param, name in step.config.data_config_names().items():
            if name not in data_names:
                problems.append(Problem(_pass_param_path(source, step.name, param), f"no data config named '{name}' "
                                        f"in 'data_configs'{did_you_mean(name, data_names)}"))
    for key, section in (("host", "systems"), ("target", "systems"), ("evaluator", "evaluators")):
        name = getattr(config.engine, key)
        if name is not None and name not in _names(source, section):
            problems.append(Problem(("engine", key), f"no {section[:-1]} named '{name}' in '{section}'"
                                                     f"{did_you_mean(name, _names(source, section))}"))
    return problems


def _check_systems(config: WorkflowConfig) -> list[Problem]:
    """The host runs the engine: LocalSystem or AzureML (one job for the whole workflow). A PythonEnvironment
    runs passes only, so it can be the target of a local host but of no AzureML job."""
    systems, host, target = config.systems, config.engine.host, config.engine.target
    host_type = systems[host].type if host in systems else "LocalSystem"
    problems = []
    if host_type == "PythonEnvironment":
        problems.append(Problem(("engine", "host"), f"system '{host}' is a PythonEnvironment, which runs "
                                                    "passes, not the engine: name it in engine.target"))
    if host_type == "AzureML" and target in systems and systems[target].type == "PythonEnvironment":
        problems.append(Problem(("engine", "target"), f"system '{target}' is a PythonEnvironment, which "
                                                      f"the AzureML job of host '{host}' cannot reach"))
    return problems


def _pass_param_path(source: SourceDocument, pass_name: str, field: str) -> DocPath:
    """Where a pass parameter was written: flat, or under the entry's `config`."""
    entry = source.data["passes"][pass_name]
    nested = isinstance(entry.get("config"), dict) and field in entry["config"]
    return ("passes", pass_name, *(("config",) if nested else ()), field)
