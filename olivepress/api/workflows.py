"""Workflow documents from Python: read one (a dict, or a file as `olivepress run --config` reads it), run it or
plan it, register a pass defined in this process, and the documents' JSON Schema."""

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, overload

from olivepress.config.schema import workflow_schema
from olivepress.config.source import SourceDocument
from olivepress.engine.local_checks import local_problems
from olivepress.engine.output import check_output_dir
from olivepress.engine.runner import Engine, RunResult
from olivepress.engine.search.driver import plan_lines, strategy_registries
from olivepress.engine.search.executors import BUILTIN_EXECUTORS, executors
from olivepress.engine.search.samplers import BUILTIN_SAMPLERS, samplers
from olivepress.evaluation.metrics import builtin_metrics, metric_types
from olivepress.hardware import Accelerator
from olivepress.hosts.dry_run import write_dry_run
from olivepress.log import logger
from olivepress.models.resolve import resolve_input_model
from olivepress.passes.registry import PassRegistry
from olivepress.systems.azureml.client import connect as azureml_connect
from olivepress.systems.azureml.service import Connect
from olivepress.workflow.loader import load_workflow, validate_document
from olivepress.workflow.plan import Workflow

DICT_SOURCE = "<dict>"  # the file name that error lines give a document handed in as a dict

# A workflow document: a dict, a JSON/YAML file, or one already loaded with `load`.
Config = Mapping[str, Any] | str | os.PathLike[str] | Workflow


def load(config: Config, source_name: str = DICT_SOURCE) -> Workflow:
    """The document checked exactly as `olivepress run --config` checks a file: older Olive shapes migrated, the files
    it names looked for, and every problem reported (an `OlivepressError` whose message is the first, `.problems`
    all of them, in document order). A dict
    is copied, never changed; its error lines name `source_name` instead of a file."""
    if isinstance(config, Workflow):
        return config
    if isinstance(config, Mapping):
        return check_document(SourceDocument(data=copy.deepcopy(dict(config)), file=source_name))
    return load_workflow(Path(config), PassRegistry.default(), strategy_registries(), local_problems)


def check_document(source: SourceDocument) -> Workflow:
    """A document built in memory, checked with every registered pass, sampler and executor, and against the files
    it names."""
    return validate_document(source, PassRegistry.default(), strategy_registries(), local_problems)


@dataclass
class PlannedStep:
    """One pass of a dry run: its key and whether the cache holds it (None when the input model is not fetched)."""

    name: str
    type: str
    config: dict[str, Any]  # the parameters the document set, defaults left out
    key: str | None = None
    cached: bool | None = None


@dataclass
class Plan:
    """What a run would do, computed without running any pass."""

    workflow_id: str
    source: str  # the document's file, or DICT_SOURCE
    input_model: str  # its type and path, as written
    input_model_fetched: bool  # False: the keys are unknown until `run` fetches it
    accelerator: Accelerator
    cache_dir: Path
    output_dir: Path
    steps: list[PlannedStep] = field(default_factory=list)
    search: list[str] = field(default_factory=list)  # the evaluator's objectives and the search's size, one line each
    azureml_files: list[Path] = field(default_factory=list)  # the job, environment and data YAML of AzureML systems


@overload
def run(config: Config, *, output_path: str | os.PathLike[str] | None = None, dry_run: Literal[False] = False,
        connect: Connect = azureml_connect) -> RunResult: ...
@overload
def run(config: Config, *, output_path: str | os.PathLike[str] | None = None, dry_run: Literal[True],
        connect: Connect = azureml_connect) -> Plan: ...
@overload
def run(config: Config, *, output_path: str | os.PathLike[str] | None = None, dry_run: bool = False,
        connect: Connect = azureml_connect) -> RunResult | Plan: ...


def run(config: Config, *, output_path: str | os.PathLike[str] | None = None, dry_run: bool = False,
        connect: Connect = azureml_connect) -> RunResult | Plan:
    """Run a workflow document, as `olivepress run --config` does, and return its result; with `dry_run`, run no
    pass and return the `Plan`. `output_path` overrides engine.output_dir. Bad input raises `OlivepressError`, a
    failed pass `PassFailedError`, each with the line the CLI prints. `connect` is how AzureML is reached (tests
    hand in a double)."""
    workflow = load(config)
    for line in workflow.rewrite_lines():
        logger.warning("rewrote %s", line)
    if output_path is not None:
        engine_section = workflow.config.engine.model_copy(update={"output_dir": str(output_path)})
        workflow = replace(workflow, config=workflow.config.model_copy(update={"engine": engine_section}))
    engine = Engine(workflow, connect)
    if dry_run:
        return plan(engine)
    if workflow.config.azureml_host() is not None:  # the whole workflow runs as one AzureML job
        from olivepress.hosts.azureml import submit_workflow

        return submit_workflow(engine)
    return engine.run()


def plan(engine: Engine) -> Plan:
    """The dry run of `engine`'s workflow: each pass with its key when the input model is at hand, the search's size,
    and the AzureML YAML written beside the output folder."""
    config = engine.workflow.config
    check_output_dir(engine.output_dir)
    model = resolve_input_model(config.input_model, fetch=False, assets=engine.assets)
    if model is None:
        steps = [PlannedStep(step.name, step.pass_class.name, _changed(step)) for step in engine.workflow.steps]
    else:
        steps = [PlannedStep(step.name, step.pass_class.name, _changed(step), key, cached)
                 for step, key, cached in engine.predicted_keys(model)]
    return Plan(workflow_id=config.workflow_id, source=engine.workflow.source.file,
                input_model=f"{config.input_model.type} {config.input_model.model_path}",
                input_model_fetched=model is not None, accelerator=engine.accelerator, cache_dir=engine.cache.root,
                output_dir=engine.output_dir, steps=steps, search=plan_lines(engine), azureml_files=write_dry_run(engine))


def _changed(step) -> dict[str, Any]:
    return step.config.model_dump(mode="json", exclude_unset=True)


def schema(*, builtin_only: bool = False) -> dict[str, Any]:
    """The JSON Schema of workflow documents, with every registered pass (those of `register_pass` too), metric type,
    sampler and executor; `builtin_only` leaves out installed plugins and passes registered in this process."""
    return registry_schema(PassRegistry.builtin() if builtin_only else PassRegistry.default(), builtin_only)


def registry_schema(registry: PassRegistry, builtin_only: bool) -> dict[str, Any]:
    """The schema with `registry`'s passes and the built-in (or also the installed plugins') metric types,
    samplers and executors."""
    if builtin_only:
        metrics = builtin_metrics()
        sampler_names, executor_names = [n for n, _ in BUILTIN_SAMPLERS], [n for n, _ in BUILTIN_EXECUTORS]
    else:
        metrics, sampler_names, executor_names = metric_types(), samplers().names(), executors().names()
    return workflow_schema(registry, [(name, t.config) for name, t in metrics.items()], sampler_names, executor_names)
