"""Finding a data config's files on disk, and checking JSON files before `datasets` reads them."""

import glob
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.models.azureml_assets import (
    AssetStore,
    asset_data_files,
    is_azureml_uri,
)
from olivepress.models.hub import HubSnapshot, hub_snapshot

FILE_FORMATS = ("json", "csv", "parquet", "text", "arrow")  # the `datasets` builders read from local files


def local_data_files(data_files: str | list[str] | None, assets: AssetStore | None = None) -> list[Path]:
    """The files named by `data_files` (relative to the current directory), glob patterns expanded in order;
    an AzureML datastore URI is downloaded once into `assets` (an error where there is none)."""
    patterns = _patterns(data_files)
    files: list[Path] = []
    for pattern in patterns:
        if is_azureml_uri(pattern):
            files.extend(asset_data_files(pattern, assets))
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise OlivepressError(f"data file not found: no file matches {pattern}")
            files.extend(matches)
        elif Path(pattern).is_file():
            files.append(Path(pattern))
        else:
            raise OlivepressError(f"data file not found: {pattern}")
    return [file.resolve() for file in files]


def _patterns(data_files: str | list[str] | None) -> list[str]:
    return [data_files] if isinstance(data_files, str) else list(data_files or [])


def with_local_files(config: DataConfig, assets: AssetStore) -> DataConfig:
    """`config` with each AzureML datastore URI in its data_files replaced by the downloaded files."""
    params = config.load_dataset_config.params
    patterns = _patterns(params.data_files)
    if not any(is_azureml_uri(pattern) for pattern in patterns):
        return config
    files = [str(file) for pattern in patterns
             for file in (asset_data_files(pattern, assets) if is_azureml_uri(pattern) else [pattern])]
    load = config.load_dataset_config
    local_load = load.model_copy(update={"params": params.model_copy(update={"data_files": files})})
    return config.model_copy(update={"load_dataset_config": local_load})


class LocalDataConfigs(Mapping[str, DataConfig]):
    """Data configs by name, each with its AzureML data files downloaded into `assets` on first use, so that
    whoever reads them (a pass, a metric, a worker) finds local files and needs no asset store."""

    def __init__(self, configs: Mapping[str, DataConfig], assets: AssetStore):
        self.configs = configs
        self.assets = assets
        self._local: dict[str, DataConfig] = {}

    def __getitem__(self, name: str) -> DataConfig:
        if name not in self._local:
            self._local[name] = with_local_files(self.configs[name], self.assets)
        return self._local[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.configs)

    def __len__(self) -> int:
        return len(self.configs)


def check_json_file(path: Path) -> None:
    """Raise an error naming the file and line when `path` is neither one JSON document nor JSON Lines.

    `datasets` reports a broken line only as a generic generation error, so the file is checked first.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise OlivepressError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    # split on '\n' only: str.splitlines would also split on U+2028, which JSON allows inside strings
    lines = [line.rstrip("\r") for line in text.split("\n")]
    content_lines = [number for number, line in enumerate(lines, 1) if line.strip()]
    for number in content_lines:
        try:
            json.loads(lines[number - 1])
        except json.JSONDecodeError as error:
            if number != content_lines[0]:
                raise OlivepressError(f"{path}:{number}: not valid JSON Lines: {error.msg} (column {error.colno})") from None
            break  # the first line alone is not JSON: the file may be one JSON document over many lines
    else:
        return
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise OlivepressError(f"{path}:{error.lineno}: not valid JSON: {error.msg} (column {error.colno})") from None


def hub_dataset(repo_id: str) -> HubSnapshot:
    """The dataset `repo_id` at its main branch, downloaded with huggingface_hub unless cached, under the same rules
    as hub models (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE; HF_HUB_OFFLINE=1: the cache only)."""
    where = f"load_dataset_config.params.data_name (not a file format: {', '.join(FILE_FORMATS)})"
    return hub_snapshot(repo_id, None, where, repo_type="dataset")
