"""The job's compute and environment, checked before anything is submitted."""

import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from olivepress.config.sections import AzureMLSystemConfig
from olivepress.errors import OlivepressError
from olivepress.log import logger

if TYPE_CHECKING:
    from azure.ai.ml.entities import Environment

# AzureML compute names: a letter, then letters, digits and hyphens; 2 to 24 characters in all.
COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,23}")


def check_compute_name(system_name: str, config: AzureMLSystemConfig) -> str:
    if not COMPUTE_NAME.fullmatch(config.aml_compute):
        raise OlivepressError(
            f"systems.{system_name}.aml_compute: '{config.aml_compute}' is not an AzureML compute name "
            "(a letter, then letters, digits or hyphens; 2 to 24 characters)"
        )
    return config.aml_compute


def job_environment(system_name: str, config: AzureMLSystemConfig) -> "Environment | str":
    """A registered environment's id, or an Environment built from the docker config (checked here)."""
    from azure.ai.ml.entities import BuildContext, Environment

    registered = config.aml_environment_config
    if registered is not None:
        return f"azureml:{registered.name}:{registered.version}" if registered.version else \
            f"azureml:{registered.name}@{registered.label}"
    docker = config.aml_docker_config
    assert docker is not None  # the config's validator demands one of the two
    where = f"systems.{system_name}.aml_docker_config"
    conda_file = _conda_file(docker.conda_file_path, f"{where}.conda_file_path") if docker.conda_file_path else None
    build = None
    if docker.build_context_path is not None:
        context = Path(docker.build_context_path)
        dockerfile = docker.dockerfile or "Dockerfile"
        if not context.is_dir():
            raise OlivepressError(f"{where}.build_context_path: {context}: no such folder")
        if not (context / dockerfile).is_file():
            raise OlivepressError(f"{where}.dockerfile: {context / dockerfile}: no such file")
        build = BuildContext(path=str(context.resolve()), dockerfile_path=dockerfile)
    try:
        return Environment(image=docker.base_image, conda_file=str(conda_file) if conda_file else None, build=build,
                           name=docker.name, version=docker.version)
    except Exception as error:  # azure-ai-ml's own checks
        raise OlivepressError(f"{where}: not a valid AzureML environment: {error}") from None


def _conda_file(value: str, where: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise OlivepressError(f"{where}: {path}: no such file")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise OlivepressError(f"{where}: {path} is not YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(content, dict) or not isinstance(content.get("dependencies"), list):
        raise OlivepressError(f"{where}: {path} is not a conda environment file (no 'dependencies' list)")
    if "olivepress" not in path.read_text(encoding="utf-8"):
        logger.warning("%s: %s does not install olivepress; the job runs olivepress, so the image must have it", where, path)
    return path.resolve()
