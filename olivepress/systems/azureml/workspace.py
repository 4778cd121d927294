"""Which AzureML workspace: from command-line flags, the document's `azureml_client`, the environment, or a
config.json as the portal or `az ml` writes it, detail by detail in that order."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from olivepress.config.sections import AzureMLClientConfig
from olivepress.errors import OlivepressError

DETAILS = ("subscription_id", "resource_group", "workspace_name")
ENV_VARS = {
    "subscription_id": ("AZUREML_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"),
    "resource_group": ("AZUREML_RESOURCE_GROUP",),
    "workspace_name": ("AZUREML_WORKSPACE_NAME",),
}
CONFIG_FILES = ("config.json", ".azureml/config.json")  # searched in the current directory


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    workspace_name: str

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.resource_group}/{self.workspace_name}"


def resolve_workspace(client: AzureMLClientConfig | None, flags: dict[str, str | None] | None = None,
                      flag_names: dict[str, str] | None = None) -> Workspace:
    """Each detail from the first source that has it; a missing one is an error naming every place it may come from.

    `flags` holds command-line values by detail; `flag_names` their spellings, for the error message.
    """
    flags = flags or {}
    config_path, config_file = _config_file(client)
    found: dict[str, str] = {}
    for detail in DETAILS:
        value = (flags.get(detail) or (getattr(client, detail) if client else None)
                 or next((os.environ[var] for var in ENV_VARS[detail] if os.environ.get(var)), None)
                 or config_file.get(detail))
        if not value:
            raise OlivepressError(f"azureml: no {detail.replace('_', ' ')} given: {_where(detail, config_path, flag_names)}")
        found[detail] = str(value)
    return Workspace(**found)


def _where(detail: str, config_path: Path | None, flag_names: dict[str, str] | None) -> str:
    """Where the detail may come from: a flag (commands) or the document (workflows), the environment, a config.json."""
    if flag_names:
        first, other = f"pass {flag_names[detail]}", ""
    else:
        first, other = f"set azureml_client.{detail} in the workflow document", "; azureml_client.aml_config_path names another"
    files = str(config_path) if config_path else " or ".join(f"./{name}" for name in CONFIG_FILES)
    return (f"{first}, set {' or '.join(ENV_VARS[detail])} in the environment, "
            f"or put {detail} in a config.json ({files}{other})")


def _config_file(client: AzureMLClientConfig | None) -> tuple[Path | None, dict]:
    """(the config.json read, its content); ({}) when there is none."""
    if client is not None and client.aml_config_path:
        path = Path(client.aml_config_path)
        if not path.is_file():
            raise OlivepressError(f"azureml_client.aml_config_path: {path}: no such file")
        return path, _read_config(path)
    for name in CONFIG_FILES:
        if Path(name).is_file():
            return Path(name), _read_config(Path(name))
    return None, {}


def _read_config(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OlivepressError(f"{path}: not a workspace config.json: {error}") from None
    if not isinstance(content, dict):
        raise OlivepressError(f"{path}: not a workspace config.json (expected a JSON object)")
    return content
