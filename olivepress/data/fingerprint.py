"""A data config's content fingerprint: its settings and the contents of the files it reads (for a hub dataset:
the commit it reads)."""

import hashlib
import json
from pathlib import Path

from olivepress.config.sections import DataConfig
from olivepress.data.files import FILE_FORMATS, hub_dataset, local_data_files
from olivepress.hashing import FingerprintMemo
from olivepress.models.azureml_assets import AssetStore
from olivepress.user_code import script_digest

# Options added after data fingerprints were first published: while a document leaves them unset they stay out, so
# that the data of existing documents keeps its fingerprint (and the passes reading it their cache keys).
LATER_OPTIONS = {"load_dataset_config": ("streaming", "trust_remote_code", "col_filters"),
                 "pre_process_data_config": ("label_col", "padding", "align_labels", "labels_to_filter")}


def data_fingerprint(config: DataConfig, memo: FingerprintMemo, assets: AssetStore | None = None) -> str:
    """sha256 over the config (as JSON, without its name) and the content hash of every data file it names
    (AzureML data files downloaded into `assets`), or the resolved commit of the hub dataset it names."""
    post = config.post_process_data_config
    # fields that a data config without user code leaves unset stay out, so that its fingerprint is as it was
    unset = {"post_process_data_config"} if post.type is None and not post.params else set()
    settings = config.model_dump(mode="json", exclude={"name", "user_script", "script_dir", *unset})
    for component, names in LATER_OPTIONS.items():
        given = getattr(config, component).params.model_fields_set
        for name in set(names) - given:
            settings[component]["params"].pop(name, None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    if config.user_script is not None:
        digest.update(f"\nuser_script\0{script_digest(config.user_script, config.script_dir)}".encode())
    for name, file_hash in _content_hashes(config, memo, assets):
        digest.update(f"\n{name}\0{file_hash}".encode())
    return digest.hexdigest()


def _content_hashes(config: DataConfig, memo: FingerprintMemo, assets: AssetStore | None) -> list[tuple[str, str]]:
    params = config.load_dataset_config.params
    data_name, data_files, data_dir = params.data_name, params.data_files, params.data_dir
    if config.is_dummy() or config.user_function("load_dataset_config") is not None or data_name is None:
        return []  # rows made by olivepress or by the user's code: the settings and the script's content decide them
    if data_name in FILE_FORMATS:
        hashes = [(file.name, memo.file_hash(file)) for file in local_data_files(data_files, assets)]
        if data_files is None and data_dir is not None:
            hashes.append((str(data_dir), memo.fingerprint(Path(data_dir))))
        return hashes
    return [(data_name, f"commit {hub_dataset(data_name).commit}")]
