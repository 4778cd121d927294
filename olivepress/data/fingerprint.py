"""A data config's content fingerprint: its settings and the contents of the files it reads (for a hub dataset:
the commit it reads)."""

import hashlib
import json
from pathlib import Path

from olivepress.config.sections import DataConfig
from olivepress.data.files import FILE_FORMATS, hub_dataset, local_data_files
from olivepress.hashing import FingerprintMemo
from olivepress.models.azureml_assets import AssetStore


def data_fingerprint(config: DataConfig, memo: FingerprintMemo, assets: AssetStore | None = None) -> str:
    """sha256 over the config (as JSON, without its name) and the content hash of every data file it names
    (AzureML data files downloaded into `assets`), or the resolved commit of the hub dataset it names."""
    digest = hashlib.sha256(json.dumps(config.model_dump(mode="json", exclude={"name"}), sort_keys=True).encode())
    for name, file_hash in _content_hashes(config, memo, assets):
        digest.update(f"\n{name}\0{file_hash}".encode())
    return digest.hexdigest()


def _content_hashes(config: DataConfig, memo: FingerprintMemo, assets: AssetStore | None) -> list[tuple[str, str]]:
    params = config.load_dataset_config.params
    data_name, data_files, data_dir = params.data_name, params.data_files, params.data_dir
    if data_name in FILE_FORMATS:
        hashes = [(file.name, memo.file_hash(file)) for file in local_data_files(data_files, assets)]
        if data_files is None and data_dir is not None:
            hashes.append((str(data_dir), memo.fingerprint(Path(data_dir))))
        return hashes
    return [(data_name, f"commit {hub_dataset(data_name).commit}")]
