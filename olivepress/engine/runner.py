"""Running a workflow: plan the pass flow, run each pass through the cache, write the output."""

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress import __version__
from olivepress.config.sections import DataConfig
from olivepress.config.source import format_path
from olivepress.data.files import LocalDataConfigs
from olivepress.data.fingerprint import data_fingerprint
from olivepress.engine.cache import Cache, CacheEntry, EntryRecord
from olivepress.engine.keys import model_key, pass_key
from olivepress.engine.output import check_output_dir, write_flow_outputs, write_output
from olivepress.errors import OlivepressError, PassFailedError
from olivepress.evaluation.cache import EvaluationCache
from olivepress.files import FOOTPRINT_FILE, write_atomic
from olivepress.hashing import library_versions
from olivepress.log import OLIVE_LEVELS, logger
from olivepress.models.azureml_assets import AssetStore
from olivepress.models.handles import HfModel, ModelHandle
from olivepress.models.resolve import hub_record, resolve_input_model
from olivepress.passes.base import PassContext
from olivepress.progress import progress
from olivepress.systems.azureml.client import asset_connect
from olivepress.systems.azureml.client import connect as azureml_connect
from olivepress.systems.azureml.service import Connect
from olivepress.systems.targets import create_target
from olivepress.workflow.plan import PassStep, Workflow, chain_problem

if TYPE_CHECKING:
    from olivepress.engine.search.candidate import CandidateResult
    from olivepress.engine.search.driver import SearchResult
    from olivepress.evaluation.evaluator import Evaluator


@dataclass
class StepResult:
    name: str
    type: str
    input_key: str
    output_key: str
    config: dict[str, Any]
    cache: str  # "hit" or "miss"
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)  # what the pass reported when it was built

    @property
    def from_cache(self) -> bool:
        return self.cache == "hit"

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Origin:
    """Where and how a pass output was made, as its cache entry records it."""

    system: dict[str, Any]
    accelerator: dict[str, str]
    libraries: dict[str, str | None]
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)


# Makes a step's output inside the empty folder it is given: the output's handle and how it was made.
Builder = Callable[[Path], tuple[ModelHandle, Origin]]


@dataclass
class FlowResult:
    """One of Olive's pass flows: its name (its passes joined with '-'), output folder, model and steps."""

    name: str
    output_dir: Path
    model: ModelHandle
    steps: list[StepResult]
    footprint: dict[str, Any]
    search: "SearchResult | None" = None  # with an evaluator: the flow's candidates


@dataclass
class RunResult:
    output_dir: Path
    model: ModelHandle  # with pass_flows: the last flow's
    steps: list[StepResult] = field(default_factory=list)  # with pass_flows: the last flow's
    engine_seconds: float = 0.0
    search: "SearchResult | None" = None  # with an evaluator: every candidate, the best one and the report
    flows: list[FlowResult] = field(default_factory=list)  # with pass_flows: each flow, in the document's order
    written: bool = True  # False with engine.no_artifacts: the models are the cache's

    @property
    def metrics(self) -> dict[str, float]:
        """The output model's evaluation metrics by sub-metric name; empty without an evaluator."""
        return self.search.require_best().metrics if self.search is not None else {}

    @property
    def candidates(self) -> "list[CandidateResult]":
        """Every model the search evaluated (one, the passes as written, without a search strategy); empty without
        an evaluator."""
        return self.search.candidates if self.search is not None else []


def check_plan(workflow: Workflow) -> None:
    """Each pass must accept what the step before it makes. (The search space's own checks, which cover
    the values a search tries, run when the document is loaded.)"""
    for _, steps in workflow.flows():
        problem = chain_problem(workflow.config.input_model.kind, steps, workflow.config.engine.evaluator)
        if problem is not None:
            raise OlivepressError(f"{format_path(problem.path)}: {problem.message}")


def set_onnxruntime_log_levels(native: int, python: int) -> None:
    """ONNX Runtime's C++ log severity (0 verbose .. 4 fatal) and its Python logger's level, in Olive's numbers."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(native)
    logging.getLogger("onnxruntime").setLevel(OLIVE_LEVELS[python])


def open_cache(cache_dir: Path, shared_cache_dir: str | None) -> Cache:
    """The engine's writable cache, reading hits from the shared one too when engine.shared_cache_dir is set."""
    if shared_cache_dir is None:
        return Cache(cache_dir)
    shared = Path(shared_cache_dir)
    if not shared.is_dir():
        raise OlivepressError(f"engine.shared_cache_dir: {shared} is not a folder")
    if shared.resolve() == cache_dir.resolve():
        raise OlivepressError(f"engine.shared_cache_dir: {shared} is engine.cache_dir; the shared cache is never written")
    return Cache(cache_dir, shared=shared)


class Engine:
    """Runs a loaded workflow through the cache. Its public methods are what systems that run the whole
    workflow elsewhere (an AzureML host) use to bring the results home under the same keys:

    - `begin()` before anything else: the output folder is checked, and the cache cleaned if asked;
    - `pass_key(step, input_key)` for each step, in order from the input model's key;
    - `obtain(step, input_key, build)` to look an output up or publish what `build` made;
    - `footprint(...)` for the record written beside the output.

    `connect` opens AzureML services (a test hands in a double); `assets` is where azureml:// models and data
    files are downloaded, into this engine's cache.
    """

    def __init__(self, workflow: Workflow, connect: Connect = azureml_connect):
        self.workflow = workflow
        self.accelerator = workflow.config.accelerator()
        check_plan(workflow)
        engine = workflow.config.engine
        self.cache = open_cache(Path(engine.cache_dir), engine.shared_cache_dir)
        self.connect = connect
        self.assets = AssetStore(self.cache.root, asset_connect(workflow.config.azureml_client, connect))
        self.target = create_target(workflow, self.cache.memo, connect)
        self.output_dir = Path(engine.output_dir)
        # as the document has them (their fingerprints are in the keys), and as passes and metrics read them
        self.data_configs: dict[str, DataConfig] = {data.name: data for data in workflow.config.data_configs}
        self.local_data_configs = LocalDataConfigs(self.data_configs, self.assets)
        self._data_fingerprints: dict[str, str] = {}

    def begin(self) -> None:
        """Refuse an output folder olivepress did not write, clean the cache (or its metric values) when the document
        asks, and set ONNX Runtime's log levels."""
        engine = self.workflow.config.engine
        if not engine.no_artifacts:
            check_output_dir(self.output_dir)
        if engine.clean_cache:
            self.cache.clean()
        if engine.clean_evaluation_cache:
            shutil.rmtree(EvaluationCache(self.cache.root).folder, ignore_errors=True)
        set_onnxruntime_log_levels(engine.ort_log_severity_level, engine.ort_py_log_severity_level)

    def run(self) -> RunResult:
        started = time.perf_counter()
        self.begin()
        input_model = model = resolve_input_model(self.workflow.config.input_model, assets=self.assets)
        input_key = key = model_key(model, self.cache.memo)
        if self.workflow.config.engine.evaluator is not None and self.workflow.config.pass_flows is not None:
            return self._search_flows(model, input_key, started)
        if self.workflow.config.engine.evaluator is not None:
            return self._search(model, input_key, started)
        flows = []
        for name, steps in self.workflow.flows():  # a prefix flows share is a cache hit after the first
            model, key, results = input_model, input_key, []
            with progress(steps, desc="olivepress", unit="pass") as bar:
                for step in bar:
                    bar.set_postfix_str(step.name)
                    entry, result = self._run_step(step, model, key)
                    model, key = entry.model, entry.key
                    results.append(result)
            footprint = self.footprint(input_model, input_key, key, results)
            flows.append(FlowResult(name, self.output_dir / name, model, results, footprint))
        return self._publish(flows, started)

    def _publish(self, flows: list[FlowResult], started: float) -> RunResult:
        """Write the output folder (a folder per flow with pass_flows), unless engine.no_artifacts."""
        config = self.workflow.config
        from_cache = any(flow.steps for flow in flows)
        if config.pass_flows is not None and not config.engine.no_artifacts:
            footprint = {"workflow_id": config.workflow_id, "pass_flows": [flow.name for flow in flows]}
            exported = write_flow_outputs(self.output_dir, [(flow.name, flow.model, flow.footprint) for flow in flows],
                                          footprint, from_cache)
            for flow, model in zip(flows, exported, strict=True):
                flow.model = model
        elif not config.engine.no_artifacts:
            flows[0].model = write_output(self.output_dir, flows[0].model, flows[0].footprint, from_cache)
        last = flows[-1]
        return RunResult(self.output_dir, last.model, last.steps, time.perf_counter() - started,
                         flows=flows if config.pass_flows is not None else [], written=not config.engine.no_artifacts)

    def _search_flows(self, model: ModelHandle, input_key: str, started: float) -> RunResult:
        """Each pass flow evaluated (and searched, with a search strategy) as a workflow of its own, its best model,
        report.md and pareto.png in its folder of the output folder; footprint.json beside them lists the flows."""
        config = self.workflow.config
        flows = []
        for name, steps in self.workflow.flows():
            engine = config.engine.model_copy(update={"output_dir": str(self.output_dir / name)})
            flow = replace(self.workflow, steps=steps, config=config.model_copy(update={"pass_flows": None,
                                                                                          "engine": engine}))
            result = Engine(flow, self.connect)._search(model, input_key, started)
            flows.append(FlowResult(name, result.output_dir, result.model, result.steps, {}, result.search))
        if not config.engine.no_artifacts:
            write_atomic(self.output_dir / FOOTPRINT_FILE, json.dumps(
                {"workflow_id": config.workflow_id, "pass_flows": [flow.name for flow in flows]}, indent=2) + "\n")
        last = flows[-1]
        return RunResult(self.output_dir, last.model, last.steps, time.perf_counter() - started, last.search,
                         flows=flows, written=not config.engine.no_artifacts)

    def _search(self, model: ModelHandle, input_key: str, started: float) -> RunResult:
        """Candidates (one: the passes as written, when there is no search strategy), each evaluated; the best
        goes to the output folder with footprint.json (every candidate), report.md and pareto.png."""
        from olivepress.engine.report import write_report
        from olivepress.engine.search.driver import run_search

        search = run_search(self, model, input_key)
        best = search.require_best()
        best_model, best_key = best.output()
        footprint = self.footprint(model, input_key, best_key, best.steps)
        footprint["output_model"]["metrics"] = best.metrics
        footprint["search"] = search.footprint()
        if self.workflow.config.engine.no_artifacts:
            return RunResult(self.output_dir, best_model, best.steps, time.perf_counter() - started, search,
                             written=False)
        self.output_dir.resolve().parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.output_dir.resolve().parent, prefix=".report-") as report_dir:
            reports = write_report(Path(report_dir), search, self.workflow.config.workflow_id)
            exported = write_output(self.output_dir, best_model, footprint, from_cache=bool(best.steps))
            for report in reports:
                os.replace(report, self.output_dir / report.name)
        return RunResult(self.output_dir, exported, best.steps, time.perf_counter() - started, search)

    def run_steps(self, steps: list[PassStep], model: ModelHandle,
                  key: str) -> tuple[ModelHandle, str, list[StepResult]]:
        """Run `steps` through the cache from `model` (whose key is `key`): the last model, its key, and each
        step's result."""
        results = []
        for step in steps:
            entry, result = self._run_step(step, model, key)
            model, key = entry.model, entry.key
            results.append(result)
        return model, key, results

    def evaluator(self) -> "Evaluator":
        """The evaluator that engine.evaluator names, over this engine's data, accelerator and cache."""
        from olivepress.evaluation.evaluator import Evaluator

        config = self.workflow.config
        if config.engine.evaluator is None:
            raise OlivepressError("engine.evaluator is not set: there is no evaluator to score models with")
        return Evaluator(config.evaluators[config.engine.evaluator], self.local_data_configs, self.accelerator,
                         self.cache.root, self._data_fingerprint)

    def predicted_keys(self, model: ModelHandle) -> list[tuple[PassStep, str, bool]]:
        """(step, key, cached?) for each pass, without running anything."""
        key = model_key(model, self.cache.memo)
        predicted = []
        for step in self.workflow.steps:
            key = self.pass_key(step, key)
            predicted.append((step, key, self.cache.holds(key)))
        return predicted

    def pass_key(self, step: PassStep, input_key: str) -> str:
        """The cache key of `step`'s output when its input's key is `input_key`."""
        data = {field: self._data_fingerprint(name) for field, name in step.config.data_config_names().items()}
        return pass_key(input_key, step.pass_class, step.config, self.accelerator, data)

    def _data_fingerprint(self, name: str) -> str:
        if name not in self._data_fingerprints:
            self._data_fingerprints[name] = data_fingerprint(self.data_configs[name], self.cache.memo, self.assets)
        return self._data_fingerprints[name]

    def obtain(self, step: PassStep, input_key: str, build: Builder) -> tuple[CacheEntry, str]:
        """`step`'s output from the cache ("hit"), or made by `build` into an empty output folder and
        published ("miss"). One writer per key at a time; a failed build publishes nothing."""
        key = self.pass_key(step, input_key)
        with self.cache.writer(key):
            entry = self.cache.lookup(key)
            if entry is not None:
                return entry, "hit"
            staging = self.cache.new_staging(key)
            try:
                output_dir = staging / "model"
                output_dir.mkdir()
                output, origin = build(output_dir)
                record = EntryRecord(pass_name=step.pass_class.name, pass_version=step.pass_class.version,
                                     input_key=input_key, config=step.config.model_dump(mode="json"),
                                     accelerator=origin.accelerator, system=origin.system, libraries=origin.libraries,
                                     duration_s=origin.duration_s, metrics=origin.metrics)
                return self.cache.publish(key, staging, output, record), "miss"
            finally:
                self.cache.discard_staging(staging)

    def _run_step(self, step: PassStep, model: ModelHandle, input_key: str) -> tuple[CacheEntry, StepResult]:
        started = time.perf_counter()
        entry, outcome = self.obtain(step, input_key, lambda output_dir: self._run_pass(step, model, output_dir))
        duration = time.perf_counter() - started
        logger.debug("pass %s (%s): cache %s, %.2f s", step.name, step.pass_class.name, outcome, duration)
        result = StepResult(step.name, step.pass_class.name, input_key, entry.key, step.config.model_dump(mode="json"),
                            outcome, round(duration, 3), entry.record.metrics)
        return entry, result

    def _run_pass(self, step: PassStep, model: ModelHandle, output_dir: Path) -> tuple[ModelHandle, Origin]:
        scratch = output_dir.parent / "scratch"  # beside the output in the staging folder, gone before it is published
        scratch.mkdir()
        context = PassContext(output_dir=output_dir, scratch_dir=scratch, accelerator=self.accelerator, logger=logger,
                              data_configs=self.local_data_configs)
        started = time.perf_counter()
        try:
            output = self.target.run_pass(step, model, context)
            if isinstance(output, HfModel) and isinstance(model, HfModel):
                output = output.with_export_functions(model)  # Olive 0.6's model_script functions go along
            if output.kind != step.pass_class.produces:
                raise TypeError(f"returned an {output.kind} model, but declares that it produces {step.pass_class.produces}")
        except OlivepressError as error:
            raise OlivepressError(f"pass '{step.name}' ({step.pass_class.name}): {error}") from error
        except PassFailedError:
            raise  # a pass that failed on another system, already named
        except Exception as error:
            raise PassFailedError(step.name, f"{type(error).__name__}: {error}") from error
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        origin = Origin(system=self.target.describe(), accelerator=self.accelerator.as_dict(),
                        libraries=library_versions(), duration_s=round(time.perf_counter() - started, 3),
                        metrics=context.metrics)
        return output, origin

    def footprint(self, input_model: ModelHandle, input_key: str, output_key: str,
                  steps: list[StepResult]) -> dict[str, Any]:
        """The record written beside the output: the input model (its resolved handle `input_model` and, from a hub,
        its commit), the accelerator, libraries and each pass."""
        config = self.workflow.config.input_model
        record: dict[str, Any] = {"key": input_key, "config": config.model_dump(mode="json")}
        if (hub := hub_record(config, input_model)) is not None:
            record["hub"] = hub
        return {
            "workflow_id": self.workflow.config.workflow_id,
            "olivepress_version": __version__,
            "input_model": record,
            "accelerator": self.accelerator.as_dict(),
            "libraries": library_versions(),
            "passes": [step.as_dict() for step in steps],
            "output_model": {"key": output_key},
        }
