"""What a run would find missing on this machine, checked when a document is loaded, before anything runs: the
input model's folder or file and its adapter, local data files, user scripts and `script_dir`, a PythonEnvironment's
python (or the requirements_file of the environment olivepress builds for it), an AzureML environment's conda file
and build context. Hub ids and azureml:// references are only checked for their shape (by the document's
validation): fetching them is the run's work."""

from pathlib import Path
from typing import Any

from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import Problem, split_located
from olivepress.config.sections import AzureMLSystemConfig, PythonEnvironmentSystemConfig
from olivepress.config.source import DocPath
from olivepress.data.files import local_data_files
from olivepress.errors import OlivepressError
from olivepress.models.azureml_assets import is_azureml_uri
from olivepress.models.resolve import resolve_input_model
from olivepress.systems.python_environment import find_python

# Keys that name a user's Python file or the folder its imports are found in, wherever a document writes them.
SCRIPT_KEYS = {"user_script": "file", "script_dir": "folder"}


def local_problems(config: WorkflowConfig, document: dict[str, Any]) -> list[Problem]:
    """The problems `run` would meet on this machine. `document` is the (migrated) document `config` was read from."""
    problems = _input_model(config)
    problems += _data_files(config, document)
    problems += _scripts(document, ())
    for name, system in config.systems.items():
        problems += _system(name, system, _written_under_config(document, name))
    return problems


def _located(error: OlivepressError, default: DocPath) -> Problem:
    """An error whose message starts with its document path ('input_model.model_path: ...') as a Problem there."""
    path, message = split_located(str(error))
    return Problem(path or default, message)


def _input_model(config: WorkflowConfig) -> list[Problem]:
    model_path = config.input_model.model_path
    if model_path is not None and is_azureml_uri(model_path):
        return []
    try:
        resolve_input_model(config.input_model, fetch=False)
    except OlivepressError as error:
        return [_located(error, ("input_model", "model_path"))]
    return []


def _data_files(config: WorkflowConfig, document: dict[str, Any]) -> list[Problem]:
    raw = document.get("data_configs")
    items: list[Any] = raw if isinstance(raw, list) else []
    written = {item["name"]: index for index, item in enumerate(items)
               if isinstance(item, dict) and isinstance(item.get("name"), str)}
    problems = []
    for data in config.data_configs:
        params = getattr(getattr(data, "load_dataset_config", None), "params", None)
        files = getattr(params, "data_files", None)
        patterns = [files] if isinstance(files, str) else list(files or [])
        local = [pattern for pattern in patterns if not is_azureml_uri(pattern)]
        if not local or data.name not in written:
            continue
        try:
            local_data_files(local)
        except OlivepressError as error:
            index = written[data.name]
            load = items[index].get("load_dataset_config")
            nested = isinstance(load, dict) and isinstance(load.get("params"), dict) and "data_files" in load["params"]
            problems.append(Problem(("data_configs", index, "load_dataset_config", *(("params",) if nested else ()),
                                     "data_files"), str(error)))
    return problems


def _scripts(value: Any, path: DocPath) -> list[Problem]:
    """Each user_script that is no file and script_dir that is no folder, anywhere in the document."""
    problems = []
    if isinstance(value, dict):
        for key, item in value.items():
            kind = SCRIPT_KEYS.get(key)
            if kind is not None and isinstance(item, str) and _is_path(item, kind) and not _exists(Path(item), kind):
                problems.append(Problem((*path, key), f"{item}: no such {kind}"))
            else:
                problems += _scripts(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _scripts(item, (*path, index))
    return problems


def _is_path(value: str, kind: str) -> bool:
    """A folder, or a user script given as a file; a user script named as a module is imported when it runs."""
    return kind == "folder" or value.endswith(".py") or "/" in value or "\\" in value


def _exists(path: Path, kind: str) -> bool:
    return path.is_file() if kind == "file" else path.is_dir()


def _written_under_config(document: dict[str, Any], name: str) -> bool:
    """Whether the system's keys are written under its `config` (Olive's nested spelling)."""
    systems = document.get("systems")
    entry = systems.get(name) if isinstance(systems, dict) else None
    return isinstance(entry, dict) and isinstance(entry.get("config"), dict)


def _system(name: str, system: Any, nested: bool = False) -> list[Problem]:
    where: DocPath = ("systems", name)
    problems = []
    if isinstance(system, PythonEnvironmentSystemConfig) and system.olive_managed_env:
        if system.requirements_file is not None and not Path(system.requirements_file).is_file():
            problems.append(Problem((*where, *(("config",) if nested else ()), "requirements_file"),
                                    f"{system.requirements_file}: no such file"))
    elif isinstance(system, PythonEnvironmentSystemConfig) and system.python_environment_path is not None:
        try:
            find_python(Path(system.python_environment_path), f"systems.{name}.python_environment_path")
        except OlivepressError as error:
            problems.append(_located(error, (*where, "python_environment_path")))
    docker = system.aml_docker_config if isinstance(system, AzureMLSystemConfig) else None
    if docker is not None:
        place = (*where, "aml_docker_config")
        if docker.conda_file_path is not None and not Path(docker.conda_file_path).is_file():
            problems.append(Problem((*place, "conda_file_path"), f"{docker.conda_file_path}: no such file"))
        context = Path(docker.build_context_path) if docker.build_context_path is not None else None
        if context is not None and not context.is_dir():
            problems.append(Problem((*place, "build_context_path"), f"{context}: no such folder"))
        elif context is not None and not (context / (docker.dockerfile or "Dockerfile")).is_file():
            problems.append(Problem((*place, "dockerfile"), f"{context / (docker.dockerfile or 'Dockerfile')}: no such file"))
    return problems
