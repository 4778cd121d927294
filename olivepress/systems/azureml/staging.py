"""Local files and folders a job reads, staged as AzureML data assets named by their content.

An asset is named `olivepress-<first 24 hex digits of the content's sha256>` (version 1): the same
model folder or data file is uploaded once, whichever job or workflow reads it again.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivepress.config.sections import DataConfig
from olivepress.data.files import FILE_FORMATS, local_data_files
from olivepress.errors import OlivepressError
from olivepress.hashing import FingerprintMemo
from olivepress.models.azureml_assets import (
    DatastorePath,
    is_azureml_uri,
    parse_asset_uri,
)
from olivepress.systems.azureml.service import AzureMLService

if TYPE_CHECKING:
    from azure.ai.ml import Input
    from azure.ai.ml.entities import Data

ASSET_VERSION = "1"


@dataclass
class Stager:
    """Creates each data asset once (or, without a service, only collects them for a dry run)."""

    memo: FingerprintMemo
    service: AzureMLService | None = None
    assets: dict[str, "Data"] = field(default_factory=dict)  # by name: every asset the built jobs read

    def folder(self, path: Path, role: str) -> "Input":
        return self._stage(path, "uri_folder", self.memo.fingerprint(path), role)

    def file(self, path: Path, role: str) -> "Input":
        return self._stage(path, "uri_file", self.memo.file_hash(path), role)

    def _stage(self, path: Path, kind: str, content_hash: str, role: str) -> "Input":
        from azure.ai.ml import Input
        from azure.ai.ml.entities import Data

        name = f"olivepress-{content_hash[:24]}"
        if name not in self.assets:
            data = Data(name=name, version=ASSET_VERSION, path=str(path.resolve()), type=kind,
                        description=f"olivepress {role}: {path.name}")
            if self.service is not None and self.service.find_data(name, ASSET_VERSION) is None:
                self.service.create_data(data)
            self.assets[name] = data
        return Input(type=kind, path=f"azureml:{name}:{ASSET_VERSION}")


def stage_data_configs(configs: list[DataConfig], stager: Stager, refer: Callable[[str, str], str]
                       ) -> tuple[list[dict[str, Any]], dict[str, "Input"]]:
    """The data configs as JSON with every file they read made a job input, and those inputs by name.

    `refer(input_name, file_name)` is how the remote side spells the path of an input.
    """
    from azure.ai.ml import Input

    inputs: dict[str, Input] = {}

    def add(job_input: Input, file_name: str) -> str:
        name = f"data_{len(inputs)}"
        inputs[name] = job_input
        return refer(name, file_name)

    staged = []
    for config in configs:
        params = config.load_dataset_config.params
        if params.data_name not in FILE_FORMATS:
            raise OlivepressError(
                f"data_configs.{config.name}: data_name '{params.data_name}' is a dataset in the local Hugging Face "
                "cache, which an AzureML job cannot read; name its files in data_files instead"
            )
        update: dict[str, Any] = {}
        if params.data_files is not None:
            patterns = [params.data_files] if isinstance(params.data_files, str) else params.data_files
            files = []
            for pattern in patterns:
                if is_azureml_uri(pattern):
                    asset = parse_asset_uri(pattern)
                    if not isinstance(asset, DatastorePath):
                        raise OlivepressError(f"data_configs.{config.name}: {pattern}: a model is not a data file")
                    if asset.is_folder:
                        files.append(add(Input(type="uri_folder", path=pattern), "") + "/**/*")
                    else:
                        files.append(add(Input(type="uri_file", path=pattern), Path(asset.path).name))
                else:
                    files += [add(stager.file(file, f"data of {config.name}"), file.name) for file in local_data_files(pattern)]
            update["data_files"] = files
        elif params.data_dir is not None:
            update["data_dir"] = add(stager.folder(Path(params.data_dir), f"data of {config.name}"), "")
        dumped = config.model_dump(mode="json")
        dumped["load_dataset_config"]["params"].update(update)
        staged.append(dumped)
    return staged, inputs
