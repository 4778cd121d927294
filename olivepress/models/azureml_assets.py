"""AzureML assets as model paths and data files: their URIs, and each one downloaded once into the cache.

The spellings (the migration of Olive documents writes these):
    azureml://registries/<registry>/models/<name>/versions/<version>      a model in a registry
    azureml:<name>:<version>                                              a model in the workspace
    azureml://datastores/<datastore>/paths/<path>                         a datastore file or folder
    azureml://subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/datastores/<datastore>/paths/<path>

A download lands in `<cache>/assets/<sha256 of the URI>/files/`, staged under `<cache>/staging/` and
moved into place by one rename once complete, so an interrupted download is never taken for a finished
one. Assets are keyed by their URI: a model version never changes; a datastore path is read once, and
read again only after `olivepress cache` cleans it away (or with `engine.clean_cache`).
"""

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, overload

from filelock import FileLock

from olivepress.errors import OlivepressError
from olivepress.files import staged_folder
from olivepress.log import logger
from olivepress.models.mlflow import MLFLOW_FORMAT

if TYPE_CHECKING:
    from olivepress.config.sections import HfModelConfig, OnnxModelConfig

ASSET_FILE = "asset.json"

_REGISTRY_MODEL = re.compile(r"azureml://registries/([^/]+)/models/([^/]+)/versions/([^/]+)/?")
_WORKSPACE_MODEL = re.compile(r"azureml:([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)")
_DATASTORE = re.compile(
    r"azureml://(?:subscriptions/([^/]+)/resource[gG]roups/([^/]+)/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/([^/]+)/)?datastores/([^/]+)/paths/(.+)"
)
FORMS = (
    "azureml://registries/<registry>/models/<name>/versions/<version>, azureml:<name>:<version>, "
    "azureml://datastores/<datastore>/paths/<path>"
)


@dataclass(frozen=True)
class RegistryModel:
    registry: str
    name: str
    version: str


@dataclass(frozen=True)
class WorkspaceModel:
    name: str
    version: str


@dataclass(frozen=True)
class DatastorePath:
    datastore: str
    path: str
    workspace: tuple[str, str, str] | None = None  # (subscription, resource group, workspace) when the URI names it

    @property
    def uri(self) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{self.path}"

    @property
    def is_folder(self) -> bool:
        return self.path.endswith("/")


Asset = RegistryModel | WorkspaceModel | DatastorePath


def is_azureml_uri(value: str) -> bool:
    return isinstance(value, str) and value.startswith("azureml:")


def parse_asset_uri(uri: str) -> Asset:
    if match := _REGISTRY_MODEL.fullmatch(uri):
        return RegistryModel(*match.groups())
    if match := _WORKSPACE_MODEL.fullmatch(uri):
        return WorkspaceModel(*match.groups())
    if match := _DATASTORE.fullmatch(uri):
        subscription, group, workspace, datastore, path = match.groups()
        return DatastorePath(datastore, path, (subscription, group, workspace) if subscription else None)
    raise OlivepressError(f"{uri}: not an AzureML asset URI this version reads (the forms are {FORMS})")


class AssetService(Protocol):
    """The part of an AzureML service connection that downloads assets (systems/azureml/client.py has one)."""

    def download_model(self, asset: RegistryModel | WorkspaceModel, into: Path) -> None:
        """Download the model's files into the folder `into`, which it creates."""

    def download_datastore_path(self, asset: DatastorePath, into: Path) -> None:
        """Download the datastore file or folder into the folder `into`, which it creates."""


# Connects to the service that holds an asset (a registry, or a workspace); called once per download.
AssetConnect = Callable[[Asset], AssetService]


class AssetStore:
    """Downloads of AzureML assets under one cache root, through the connections `connect` makes."""

    def __init__(self, cache_root: Path, connect: AssetConnect):
        self.root = cache_root.resolve()
        self.connect = connect

    @overload
    def folder(self, uri: str, fetch: Literal[True] = True) -> Path: ...

    @overload
    def folder(self, uri: str, fetch: bool) -> Path | None: ...

    def folder(self, uri: str, fetch: bool = True) -> Path | None:
        """The local folder holding the asset's files; None when `fetch` is off and it is not downloaded yet."""
        asset = parse_asset_uri(uri)
        digest = hashlib.sha256(uri.encode()).hexdigest()
        target = self.root / "assets" / digest
        if (target / ASSET_FILE).is_file():
            return target / "files"
        if not fetch:
            return None
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / "locks" / f"{digest}.lock"):
            if not (target / ASSET_FILE).is_file():
                self._download(uri, asset, digest, target)
        return target / "files"

    def _download(self, uri: str, asset: Asset, digest: str, target: Path) -> None:
        staging_dir = self.root / "staging"
        for leftover in staging_dir.glob(f"{digest}-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an earlier, interrupted download of this asset
        logger.info("downloading %s into the cache", uri)
        with staged_folder(target, staging_parent=staging_dir, prefix=digest) as staging:
            service = self.connect(asset)
            if isinstance(asset, DatastorePath):
                service.download_datastore_path(asset, staging / "files")
            else:
                service.download_model(asset, staging / "files")
            if not (staging / "files").is_dir():
                raise OlivepressError(f"{uri}: the download produced no files")
            record = {"uri": uri, "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (staging / ASSET_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")


def require_store(store: AssetStore | None, uri: str) -> AssetStore:
    """`store`; where there is none, an error (after checking the URI's form): whoever reads an asset is handed
    the store, as a workflow's engine hands its own."""
    parse_asset_uri(uri)
    if store is None:
        raise OlivepressError(f"{uri}: AzureML assets are read only in a workflow run, which downloads them into its cache")
    return store


def with_downloaded_model(config: "HfModelConfig | OnnxModelConfig", store: AssetStore | None,
                          fetch: bool = True) -> "HfModelConfig | OnnxModelConfig | None":
    """`config` with its azureml model_path replaced by the downloaded folder; None when not fetched and `fetch` is off."""
    root = require_store(store, config.model_path).folder(config.model_path, fetch)
    if root is None:
        return None
    if config.type == "HfModel":
        markers = ("MLmodel",) if config.model_file_format == MLFLOW_FORMAT else ("config.json",)
    else:
        markers = (config.onnx_file_name or "model.onnx",)
    return config.model_copy(update={"model_path": str(model_root(root, markers))})


def model_root(folder: Path, markers: Sequence[str]) -> Path:
    """The shallowest folder under `folder` holding one of `markers` (a registered model may keep the files a
    few levels down, as MLflow's mlflow_model_folder/data/model does); `folder` itself when none does."""
    level = [folder]
    while level:
        for candidate in level:
            if any((candidate / marker).is_file() for marker in markers):
                return candidate
        level = sorted(child for parent in level for child in parent.iterdir() if child.is_dir())
    return folder


def asset_data_files(uri: str, store: AssetStore | None) -> list[Path]:
    """The downloaded files of a datastore file or folder, in name order."""
    asset = parse_asset_uri(uri)
    if not isinstance(asset, DatastorePath):
        raise OlivepressError(f"data file {uri}: a model is not a data file; name a datastore path ({FORMS.split(', ')[-1]})")
    folder = require_store(store, uri).folder(uri)
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if not files:
        raise OlivepressError(f"data file not found: {uri} holds no files")
    return files
