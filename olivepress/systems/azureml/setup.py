"""What a job does before its command: install the olivepress that built it, and log in to the Hugging Face hub.

olivepress is not published on an index, so the job installs a wheel of the running olivepress, built from its
source tree once per source (under `<cache>/wheels/<hash of the source>/`) and staged as the job input
`olivepress_wheel`, with the extras the workflow needs. `install_olivepress: false` on the system leaves it to
the environment. `hf_token: true` logs the job in with the key vault secret `hf-token`, as Olive does.
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import olivepress
from olivepress.config.sections import AzureMLSystemConfig, SearchStrategyConfig
from olivepress.errors import OlivepressError
from olivepress.files import staged_folder
from olivepress.systems.azureml.staging import Stager
from olivepress.workflow.plan import Workflow

if TYPE_CHECKING:
    from azure.ai.ml import Input

WHEEL_INPUT = "olivepress_wheel"
HF_SECRET = "hf-token"  # Olive's name of the Hugging Face token in the workspace key vault


@dataclass
class JobSetup:
    """Commands run before the job's own, the inputs they read and the environment variables they need."""

    commands: list[str] = field(default_factory=list)
    inputs: dict[str, "Input"] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)


def job_setup(system_name: str, config: AzureMLSystemConfig, workflow: Workflow, stager: Stager) -> JobSetup:
    setup = JobSetup()
    if config.install_olivepress:
        wheels = olivepress_wheel(Path(workflow.config.engine.cache_dir), f"systems.{system_name}.install_olivepress")
        setup.inputs[WHEEL_INPUT] = stager.folder(wheels, f"olivepress {olivepress.__version__} wheel")
        extras = ",".join(job_extras(config, workflow))
        setup.commands.append(f'python -m pip install --quiet "$(ls ${{{{inputs.{WHEEL_INPUT}}}}}/*.whl)'
                              f'{f"[{extras}]" if extras else ""}"')
    if config.hf_token:
        client = workflow.config.azureml_client
        vault = client.keyvault_name if client is not None else None
        if vault is None:
            raise OlivepressError(f"systems.{system_name}.hf_token: name the key vault holding the '{HF_SECRET}' secret "
                                  "in azureml_client.keyvault_name")
        setup.environment_variables.update({"HF_LOGIN": "1", "KEYVAULT_NAME": vault})
        setup.commands.append("python -m olivepress.systems.azureml.hf_login")
    return setup


def job_extras(config: AzureMLSystemConfig, workflow: Workflow) -> list[str]:
    """The olivepress extras the job needs: cuda on a GPU, the passes' optional libraries, the search's, azureml
    for the key vault login."""
    extras = {"cuda"} if any(accelerator.device == "gpu" for accelerator in config.accelerators) else set()
    for step in workflow.steps:
        settings = step.config.model_dump(mode="json")
        if settings.get("use_dynamo_exporter"):
            extras.add("dynamo")
        if step.pass_class.name == "QLoRA":
            extras.add("bnb")
    search = workflow.config.engine.search_strategy
    if isinstance(search, SearchStrategyConfig):
        extras |= {"search"} if search.sampler == "tpe" else set()
        extras |= {"ray"} if search.executor == "ray" else set()
    if config.hf_token:
        extras.add("azureml")
    return sorted(extras)


def olivepress_wheel(cache_root: Path, where: str) -> Path:
    """The folder holding a wheel of the running olivepress, built once per source tree into the cache."""
    source = Path(olivepress.__file__).resolve().parent.parent
    if not (source / "pyproject.toml").is_file():
        raise OlivepressError(f"{where}: the running olivepress ({source}) is not a source tree to build a wheel from; "
                              "install olivepress in the job's environment and set install_olivepress: false")
    target = cache_root.resolve() / "wheels" / _source_hash(source)
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(target) as staging:
            _build_wheel(source, staging, where)
    return target


@cache  # once per process: every job of a workflow stages the same wheel
def _source_hash(source: Path) -> str:
    """The sources a wheel is built from (the package and pyproject.toml), by content; not the bytecode."""
    files = [source / "pyproject.toml", *sorted(p for p in (source / "olivepress").rglob("*")
                                                if p.is_file() and "__pycache__" not in p.parts)]
    hashed = hashlib.sha256()
    for path in files:
        hashed.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()[:24]


def _build_wheel(source: Path, into: Path, where: str) -> None:
    with tempfile.TemporaryDirectory(prefix="olivepress-wheel-") as build:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                               str(source), "-w", build], capture_output=True, text=True)
        wheels = list(Path(build).glob("olivepress-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise OlivepressError(f"{where}: building a wheel of olivepress from {source} failed: {last}")
        into.mkdir(parents=True, exist_ok=True)
        shutil.move(str(wheels[0]), into / wheels[0].name)
