"""The few calls olivepress makes to the AzureML service, behind one narrow interface.

`AzureMLService` is what the rest of olivepress uses; `client.MLClientService` implements it with
azure-ai-ml. A `Connect` opens one: the engine and the commands are handed `client.connect`, and tests
hand in a recording double instead.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from olivepress.config.sections import AzureMLClientConfig
from olivepress.models.azureml_assets import (
    DatastorePath,
    RegistryModel,
    WorkspaceModel,
)
from olivepress.systems.azureml.workspace import Workspace

if TYPE_CHECKING:
    from azure.ai.ml.entities import CommandJob, Data, Model

FINISHED_OK = "Completed"


class AzureMLService(Protocol):
    def check_compute(self, name: str) -> None:
        """Raise OlivepressError when the workspace has no compute of that name."""

    def find_data(self, name: str, version: str) -> str | None:
        """The id ('azureml:name:version') of a data asset, or None when there is none."""

    def create_data(self, data: "Data") -> str:
        """Register (and upload) a data asset; returns its id."""

    def submit_job(self, job: "CommandJob") -> str:
        """Submit a job; returns its name."""

    def wait_job(self, name: str) -> str:
        """Stream the job's log until it ends; returns its final status ('Completed' when it succeeded)."""

    def log_tail(self, name: str, lines: int) -> list[str]:
        """The last lines of the job's log."""

    def download_job_output(self, name: str, output_name: str, into: Path) -> None:
        """Put the files of one named output of a finished job into the folder `into` (which must not exist)."""

    def create_model(self, model: "Model") -> str:
        """Register a model; returns its id."""

    def download_model(self, asset: RegistryModel | WorkspaceModel, into: Path) -> None:
        """Put a registered model's files into the folder `into` (which must not exist)."""

    def download_datastore_path(self, asset: DatastorePath, into: Path) -> None:
        """Put a datastore file or folder into the folder `into` (which must not exist)."""


class Connect(Protocol):
    """Opens the service of a workspace or a registry (`client.connect`, or a test's double); whatever talks
    to AzureML is handed one."""

    def __call__(self, settings: AzureMLClientConfig | None, workspace: Workspace | None = None,
                 registry: str | None = None) -> AzureMLService: ...
