"""Building an azure-ai-ml command job for an AzureML system, running it, and writing it as YAML."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from olivepress.config.sections import AzureMLSystemConfig
from olivepress.errors import OlivepressError, RunFailedError
from olivepress.log import logger
from olivepress.systems.azureml.environment import check_compute_name, job_environment
from olivepress.systems.azureml.service import FINISHED_OK, AzureMLService
from olivepress.systems.azureml.setup import JobSetup

if TYPE_CHECKING:
    from azure.ai.ml import Input
    from azure.ai.ml.entities import CommandJob, Data

LOG_TAIL_LINES = 20
OUTPUT = "output"  # the job's one output folder


class RemoteJobFailed(RunFailedError):
    """The job ran and failed (or was canceled): a failed run, not bad input."""


def build_job(system_name: str, config: AzureMLSystemConfig, command: str, inputs: Mapping[str, "Input"],
              experiment: str, display_name: str, setup: JobSetup | None = None) -> "CommandJob":
    """The command job; `setup`'s commands run first (installing olivepress, logging in to the hub)."""
    from azure.ai.ml import Output
    from azure.ai.ml.entities import CommandJob, JobResourceConfiguration

    setup = setup or JobSetup()
    resources = dict(config.resources or {})
    resources.setdefault("instance_count", config.instance_count)
    try:
        job_resources = JobResourceConfiguration(**resources)
    except TypeError as error:
        raise OlivepressError(f"systems.{system_name}.resources: {error}") from None
    return CommandJob(
        command=" && ".join([*setup.commands, command]),
        inputs={**inputs, **setup.inputs},
        environment_variables=setup.environment_variables,
        outputs={OUTPUT: Output(type="uri_folder")},
        environment=job_environment(system_name, config),
        compute=check_compute_name(system_name, config),
        resources=job_resources,
        experiment_name=experiment_name(experiment),
        display_name=display_name,
        tags={"created_by": "olivepress", **config.tags},
    )


def experiment_name(name: str) -> str:
    """AzureML experiment names take letters, digits, '-' and '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:255] or "olivepress"


def run_job(service: AzureMLService, job: "CommandJob", what: str) -> str:
    """Submit the job and wait for it; a job that did not complete raises with its status and the end of its log."""
    name = service.submit_job(job)
    logger.info("azureml: submitted job %s (%s)", name, what)
    status = service.wait_job(name)
    if status != FINISHED_OK:
        tail = service.log_tail(name, LOG_TAIL_LINES)
        log = "".join(f"\n    {line}" for line in tail) if tail else " (no log)"
        raise RemoteJobFailed(f"azureml job {name} ({what}) ended {status}; the end of its log:{log}")
    return name


def write_yaml(folder: Path, job: "CommandJob", assets: dict[str, "Data"], name: str) -> list[Path]:
    """The job (`<name>.yml`), its built environment and every data asset it reads, as azure-ai-ml writes them."""
    from azure.ai.ml.entities import Environment

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{name}.yml"]
    job.dump(written[0])
    if isinstance(job.environment, Environment):
        written.append(folder / f"{name}.environment.yml")
        job.environment.dump(written[-1])
    for asset_name, data in assets.items():
        path = folder / f"data-{asset_name}.yml"
        if not path.exists():  # named by content: an existing file describes the same asset
            data.dump(path)
        written.append(path)
    return written
