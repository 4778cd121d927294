"""AzureML as the host: the whole workflow runs as one command job, and its results come back into the
local cache (every pass's output, under the keys a local run computes) and into engine.output_dir.

The job links its inputs (`remote link`), runs `olivepress run` on a copy of the document whose paths
point at them, and exports each pass's output (`remote export-steps`). The pass keys are chained here
from the input model's key that the job reports, so the input model is never downloaded just for that.
"""

import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress.config.sections import OnnxModelConfig
from olivepress.engine.cache import CacheEntry
from olivepress.engine.output import write_output
from olivepress.engine.runner import Engine, Origin, RunResult, StepResult
from olivepress.errors import OlivepressError
from olivepress.files import FOOTPRINT_FILE, MODEL_CONFIG_FILE
from olivepress.log import logger
from olivepress.models.azureml_assets import (
    DatastorePath,
    is_azureml_uri,
    parse_asset_uri,
)
from olivepress.models.handles import PATH_FIELDS, ModelHandle, handle_from_config
from olivepress.models.mlflow import MLFLOW_FORMAT
from olivepress.models.resolve import resolve_input_model
from olivepress.systems.azureml.jobs import OUTPUT, build_job, run_job
from olivepress.systems.azureml.setup import job_setup
from olivepress.systems.azureml.staging import Stager, stage_data_configs
from olivepress.systems.protocol import pass_reference, write_json

if TYPE_CHECKING:
    from azure.ai.ml import Input
    from azure.ai.ml.entities import CommandJob

REMOTE_CACHE = ".olivepress-cache"
REMOTE_SYSTEM = "job"
DOCUMENT_FILE = "workflow.json"


def build_workflow_job(engine: Engine, stager: Stager, work_dir: Path, fetch: bool = True) -> "CommandJob":
    from azure.ai.ml import Input

    config = engine.workflow.config
    host = config.azureml_host()
    assert host is not None  # only called when engine.host is an AzureML system
    host_name, system = host
    inputs: dict[str, Input] = {}
    links: list[str] = []

    def refer(name: str, file_name: str) -> str:
        place = f"{name}/{file_name}" if file_name else name
        links.append(f"{place}=${{{{inputs.{name}}}}}")
        return f"inputs/{place}"

    model_inputs = _model_inputs(config.input_model, stager, fetch)
    for role, job_input in model_inputs.items():
        inputs[role] = job_input
        refer(role, "")
    data, data_inputs = stage_data_configs(config.data_configs, stager, refer)
    inputs.update(data_inputs)
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(work_dir / DOCUMENT_FILE, remote_document(engine, data, "adapter" in model_inputs))
    inputs["workflow"] = stager.file(work_dir / DOCUMENT_FILE, f"workflow {config.workflow_id}")
    output = f"${{{{outputs.{OUTPUT}}}}}"
    command = " && ".join([
        f"python -m olivepress.hosts.azureml_job link {' '.join(links)}",
        f"olivepress run --config ${{{{inputs.workflow}}}} --output_path {output}/result",
        f"python -m olivepress.hosts.azureml_job export-steps --cache {REMOTE_CACHE} "
        f"--footprint {output}/result/{FOOTPRINT_FILE} --into {output}/steps",
    ])
    setup = job_setup(host_name, system, engine.workflow, stager)
    return build_job(host_name, system, command, inputs, config.workflow_id, config.workflow_id, setup)


def _model_inputs(model_config, stager: Stager, fetch: bool) -> dict[str, "Input"]:
    """An AzureML model or datastore folder goes in as it is; a local model's folders are staged."""
    from azure.ai.ml import Input

    if is_azureml_uri(model_config.model_path):
        asset = parse_asset_uri(model_config.model_path)
        kind = "uri_folder" if isinstance(asset, DatastorePath) else \
            "mlflow_model" if getattr(model_config, "model_file_format", None) == MLFLOW_FORMAT else "custom_model"
        return {"model": Input(type=kind, path=model_config.model_path)}
    model = resolve_input_model(model_config, fetch=fetch)
    if model is None:
        raise OlivepressError(f"input_model.model_path: '{model_config.model_path}' is not fetched yet; "
                              f"run `olivepress fetch-model {model_config.model_path}` first")
    return {role: stager.folder(folder, f"input {role}") for role, folder in model.folders().items()}


def remote_document(engine: Engine, data_configs: list[dict[str, Any]], has_adapter: bool) -> dict[str, Any]:
    """The document the job runs: paths point into inputs/, passes run on the job's machine, nothing on AzureML."""
    workflow = engine.workflow
    config = workflow.config
    document = config.model_dump(mode="json", exclude_unset=True,
                                 exclude={"systems", "engine", "azureml_client", "input_model", "data_configs", "passes"})
    input_model = config.input_model.model_dump(mode="json", exclude_unset=True)
    input_model["model_path"] = "inputs/model"
    if has_adapter:
        input_model["adapter_path"] = "inputs/adapter"
    elif not isinstance(config.input_model, OnnxModelConfig):
        input_model.pop("adapter_path", None)
    engine_section = config.engine.model_dump(mode="json", exclude_unset=True,
                                              exclude={"host", "target", "cache_dir", "shared_cache_dir", "output_dir",
                                                       "clean_cache"})
    _, target = config.target_system()
    return {
        **document,
        "input_model": input_model,
        "systems": {REMOTE_SYSTEM: {"type": "LocalSystem",
                                    "accelerators": [a.model_dump(mode="json") for a in target.accelerators]}},
        "data_configs": data_configs,
        "passes": {step.name: {"type": pass_reference(step), "config": step.config.model_dump(mode="json", exclude_unset=True)}
                   for step in workflow.steps},
        "engine": {**engine_section, "target": REMOTE_SYSTEM, "cache_dir": REMOTE_CACHE},
    }


def submit_workflow(engine: Engine) -> RunResult:
    """Run the workflow as one AzureML job and bring its results home."""
    from olivepress.systems.azureml.client import require_azure
    from olivepress.systems.azureml.workspace import resolve_workspace

    started = time.perf_counter()
    engine.begin()
    config = engine.workflow.config
    host = config.azureml_host()
    assert host is not None  # only called when engine.host is an AzureML system
    _, system = host
    require_azure()
    service = engine.connect(config.azureml_client, resolve_workspace(config.azureml_client))
    service.check_compute(system.aml_compute)
    work_key = f"azurejob_{uuid.uuid4().hex[:12]}"
    with engine.cache.writer(work_key):  # the lock keeps `cache gc` away from the work folder
        work = engine.cache.new_staging(work_key)
        try:
            job = build_workflow_job(engine, Stager(engine.cache.memo, service), work / "job")
            name = run_job(service, job, f"workflow {config.workflow_id}")
            service.download_job_output(name, OUTPUT, work / "download")
            steps, model, footprint = import_results(engine, work / "download", name)
            exported = write_output(engine.output_dir, model, footprint, from_cache=bool(steps))
        finally:
            engine.cache.discard_staging(work)
    return RunResult(engine.output_dir, exported, steps, time.perf_counter() - started)


def import_results(engine: Engine, download: Path, job_name: str) -> tuple[list[StepResult], ModelHandle, dict[str, Any]]:
    """Publish each exported pass output under the local key; returns the steps, the final model and the footprint."""
    remote = json.loads((download / "result" / FOOTPRINT_FILE).read_text(encoding="utf-8"))
    key = input_key = remote["input_model"]["key"]
    steps: list[StepResult] = []
    model = read_output_model(download / "result")
    ran_passes = remote["passes"]
    if [ran["name"] for ran in ran_passes] != [step.name for step in engine.workflow.steps]:
        logger.warning("azureml job %s: its passes do not line up with the document's (a search?), so only the final "
                       "model comes home, not each pass's output", job_name)
        return steps, model, {**remote, "host": {"system": engine.workflow.config.engine.host, "type": "AzureML",
                                                 "job": job_name}}
    for index, (step, ran) in enumerate(zip(engine.workflow.steps, ran_passes, strict=True)):
        step_input = key
        entry = _import_step(engine, download / "steps" / str(index), step, ran, step_input, remote, job_name)
        model, key = entry.model, entry.key
        steps.append(StepResult(name=step.name, type=step.pass_class.name, input_key=step_input, output_key=key,
                                config=step.config.model_dump(mode="json"), cache=ran["cache"],
                                duration_s=ran["duration_s"], metrics=ran.get("metrics", {})))
    footprint = {
        **remote,
        "input_model": {"key": input_key, "config": engine.workflow.config.input_model.model_dump(mode="json")},
        "passes": [step.as_dict() for step in steps],
        "output_model": {"key": key},
        "host": {"system": engine.workflow.config.engine.host, "type": "AzureML", "job": job_name},
    }
    return steps, model, footprint


def _import_step(engine: Engine, exported: Path, step, ran: dict[str, Any], input_key: str,
                 remote: dict[str, Any], job_name: str) -> CacheEntry:
    """The job's output of `step`, published under the local key (unless the cache has it already)."""

    def adopt(output_dir: Path) -> tuple[ModelHandle, Origin]:
        output_dir.rmdir()
        os.rename(exported, output_dir)
        origin = Origin(system={"name": engine.workflow.config.engine.host, "type": "AzureML", "job": job_name},
                        accelerator=remote["accelerator"], libraries=remote["libraries"],
                        duration_s=ran["duration_s"], metrics=ran.get("metrics", {}))
        return read_output_model(output_dir), origin

    entry, _ = engine.obtain(step, input_key, adopt)
    return entry


def read_output_model(folder: Path) -> ModelHandle:
    """The model of an olivepress output folder, from its model_config.json (paths relative to the folder)."""
    written = json.loads((folder / MODEL_CONFIG_FILE).read_text(encoding="utf-8"))
    config = {key: str(folder / value) if key in PATH_FIELDS and value else value for key, value in written["config"].items()}
    return handle_from_config({"type": written["type"], **config})
