"""azure-ai-ml behind the AzureMLService interface: credentials, MLClient, and the calls themselves.

azure-ai-ml and azure-identity are optional (`pip install 'olivepress[azureml]'`); everything else in
olivepress works without them.
"""

import importlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from olivepress.config.sections import AzureMLClientConfig
from olivepress.errors import OlivepressError
from olivepress.log import logger
from olivepress.models.azureml_assets import (
    Asset,
    AssetConnect,
    DatastorePath,
    RegistryModel,
    WorkspaceModel,
)
from olivepress.systems.azureml.service import AzureMLService, Connect
from olivepress.systems.azureml.workspace import Workspace, resolve_workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential

INSTALL_HINT = "AzureML support is not installed: pip install 'olivepress[azureml]'"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
T = TypeVar("T")


def require_azure() -> None:
    """Fail with one line naming the extra when azure-ai-ml or azure-identity is missing."""
    try:
        for module in ("azure.ai.ml", "azure.identity"):
            importlib.import_module(module)
    except ImportError:
        raise OlivepressError(INSTALL_HINT) from None
    if not logger.isEnabledFor(logging.DEBUG):
        for name in ("azure", "azure.ai.ml", "azure.identity", "azure.core"):
            logging.getLogger(name).setLevel(logging.ERROR)  # experimental-class notes and HTTP logging


def default_credential(settings: AzureMLClientConfig | None) -> "TokenCredential":
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(**(settings.default_auth_params if settings else {}))


def check_credential(credential: "TokenCredential") -> None:
    """Get one token now, so that missing credentials fail before anything is built or uploaded."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        credential.get_token(MANAGEMENT_SCOPE)
    except ClientAuthenticationError:
        raise OlivepressError(
            "azureml: no Azure credentials found (azure-identity's DefaultAzureCredential): run `az login`, or set "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run where a managed identity is assigned"
        ) from None


def ml_client(credential: "TokenCredential", workspace: Workspace | None = None, registry: str | None = None,
              settings: AzureMLClientConfig | None = None) -> "MLClient":
    """An MLClient for a workspace or a registry; constructing it calls no service."""
    from azure.ai.ml import MLClient

    timeout: dict[str, Any] = {"read_timeout": settings.read_timeout} if settings else {}
    if registry is not None:
        return MLClient(credential, registry_name=registry, **timeout)
    assert workspace is not None, "ml_client: give a workspace or a registry"
    return MLClient(credential, workspace.subscription_id, workspace.resource_group, workspace.workspace_name, **timeout)


def connect(settings: AzureMLClientConfig | None, workspace: Workspace | None = None,
            registry: str | None = None) -> AzureMLService:
    """The service for a workspace (or a registry), signed in through DefaultAzureCredential."""
    require_azure()
    credential = default_credential(settings)
    check_credential(credential)
    return MLClientService(ml_client(credential, workspace, registry, settings), settings, where=str(workspace or registry))


def asset_connect(settings: AzureMLClientConfig | None, connect: Connect) -> AssetConnect:
    """How an asset store reaches each asset: a registry's model through the registry, a datastore path that
    names its workspace through that workspace, anything else through the document's workspace."""

    def service(asset: Asset) -> AzureMLService:
        if isinstance(asset, RegistryModel):
            return connect(settings, registry=asset.registry)
        if isinstance(asset, DatastorePath) and asset.workspace is not None:
            return connect(settings, Workspace(*asset.workspace))
        return connect(settings, resolve_workspace(settings))

    return service


class MLClientService:
    """AzureMLService over one MLClient; a call that fails to connect is retried as azureml_client says."""

    def __init__(self, client: "MLClient", settings: AzureMLClientConfig | None = None, where: str = ""):
        self.client = client
        self.settings = settings or AzureMLClientConfig()
        self.where = where

    def _call(self, call: Callable[[], T]) -> T:
        from azure.core.exceptions import ServiceRequestError

        for attempt in range(self.settings.max_operation_retries + 1):
            try:
                return call()
            except ServiceRequestError as error:
                if attempt == self.settings.max_operation_retries:
                    raise OlivepressError(f"azureml: cannot reach the service for {self.where}: {error}") from None
                time.sleep(self.settings.operation_retry_interval)
        raise AssertionError("unreachable")

    def check_compute(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._call(lambda: self.client.compute.get(name))
        except ResourceNotFoundError:
            raise OlivepressError(f"azureml: workspace {self.where} has no compute named '{name}'") from None

    def find_data(self, name: str, version: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._call(lambda: self.client.data.get(name, version=version))
        except ResourceNotFoundError:
            return None
        return f"azureml:{name}:{version}"

    def create_data(self, data: Any) -> str:
        created = self._call(lambda: self.client.data.create_or_update(data))
        return f"azureml:{created.name}:{created.version}"

    def submit_job(self, job: Any) -> str:
        return self._call(lambda: self.client.jobs.create_or_update(job)).name

    def wait_job(self, name: str) -> str:
        from azure.ai.ml.exceptions import JobException

        try:
            self.client.jobs.stream(name)
        except JobException:
            pass  # the status says how it ended
        return self._call(lambda: self.client.jobs.get(name)).status

    def log_tail(self, name: str, lines: int) -> list[str]:
        with tempfile.TemporaryDirectory() as folder:
            self._call(lambda: self.client.jobs.download(name, download_path=folder))
            logs = sorted(Path(folder).rglob("std_log*.txt"))
            if not logs:
                return []
            return logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]

    def download_job_output(self, name: str, output_name: str, into: Path) -> None:
        with tempfile.TemporaryDirectory(dir=into.parent) as folder:
            self._call(lambda: self.client.jobs.download(name, download_path=folder, output_name=output_name))
            os.rename(Path(folder) / "named-outputs" / output_name, into)

    def create_model(self, model: Any) -> str:
        created = self._call(lambda: self.client.models.create_or_update(model))
        return f"azureml:{created.name}:{created.version}"

    def download_model(self, asset: RegistryModel | WorkspaceModel, into: Path) -> None:
        with tempfile.TemporaryDirectory(dir=into.parent) as folder:
            self._call(lambda: self.client.models.download(asset.name, asset.version, download_path=folder))
            os.rename(Path(folder) / asset.name, into)

    def download_datastore_path(self, asset: DatastorePath, into: Path) -> None:
        from azure.ai.ml._artifacts._artifact_utilities import (
            download_artifact_from_aml_uri,
        )

        into.mkdir()  # the caller stages `into` and publishes it only once complete
        self._call(lambda: download_artifact_from_aml_uri(asset.uri, str(into), self.client.datastores))
