"""Turning the document's `input_model` into a model handle: a local folder, a hub id (downloaded into the Hugging
Face cache unless there), an AzureML asset (downloaded into the cache), or a built-in model."""

from pathlib import Path
from typing import Literal, overload

from olivepress.config.sections import HfModelConfig, InputModelConfig, OnnxModelConfig, PyTorchModelConfig
from olivepress.errors import OlivepressError
from olivepress.files import MODEL_CONFIG_FILE
from olivepress.models import default_model
from olivepress.models.azureml_assets import (
    AssetStore,
    is_azureml_uri,
    with_downloaded_model,
)
from olivepress.models.handles import HfModel, ModelHandle, OnnxModel, PyTorchModel
from olivepress.models.hub import cached_snapshot, hub_snapshot, is_hub_id, snapshot_record
from olivepress.models.mlflow import MLFLOW_FORMAT, mlflow_hf_folder
from olivepress.user_code import check_script_dir, script_path


@overload
def resolve_input_model(config: InputModelConfig, fetch: Literal[True] = True,
                        assets: AssetStore | None = None) -> ModelHandle: ...


@overload
def resolve_input_model(config: InputModelConfig, fetch: bool,
                        assets: AssetStore | None = None) -> ModelHandle | None: ...


def resolve_input_model(config: InputModelConfig, fetch: bool = True,
                        assets: AssetStore | None = None) -> ModelHandle | None:
    """The handle of the input model; None only when `fetch` is off and a built-in model, a hub model or an
    AzureML asset is not fetched yet. An AzureML asset is downloaded into `assets` (an error where there is none)."""
    if isinstance(config, PyTorchModelConfig):
        return pytorch_model(config)
    if is_azureml_uri(config.model_path):
        downloaded = with_downloaded_model(config, assets, fetch)
        if downloaded is None:
            return None
        config = downloaded
    if isinstance(config, OnnxModelConfig):
        return _onnx_model(config)
    return _hf_model(config, fetch)


def _hf_model(config: HfModelConfig, fetch: bool) -> HfModel | None:
    # the script of its export functions first: checked also when the model is not fetched yet
    script = script_path(config.model_script, config.script_dir, "input_model.model_script") \
        if config.model_script is not None else None
    check_script_dir(config.script_dir, "input_model.script_dir")
    if default_model.is_known_model(config.model_path):
        if not fetch and not default_model.is_fetched(config.model_path):
            return None
        path = default_model.resolve_known_model(config.model_path, fetch=fetch)
    elif not fetch and is_hub_id(config.model_path) and cached_snapshot(config.model_path, config.revision) is None:
        return None
    else:
        path = hf_model_folder(config.model_path, config.revision, config.model_file_format)
    adapter = _output_adapter(Path(config.model_path))
    if config.adapter_path is not None:
        adapter = Path(config.adapter_path).resolve()
        if not (adapter / "adapter_config.json").is_file():
            raise OlivepressError(f"input_model.adapter_path: {config.adapter_path} is not a PEFT adapter folder "
                                  "(no adapter_config.json)")
    io_config = config.io_config if isinstance(config.io_config, str) or config.io_config is None \
        else config.io_config.model_dump(exclude_defaults=True)
    return HfModel(path=path, adapter_path=adapter, task=config.task, load_kwargs=config.load_kwargs,
                   io_config=io_config, model_class=config.model_class, model_script=script,
                   script_dir=Path(config.script_dir).resolve() if config.script_dir is not None else None,
                   dummy_inputs_func=config.dummy_inputs_func)


def pytorch_model(config: PyTorchModelConfig) -> PyTorchModel:
    """Local paths resolved and checked (the model's script and its script_dir); a model_path that is not local
    is the loader's to interpret (a hub id)."""
    where = "input_model"
    local = Path(config.model_path) if config.model_path is not None and Path(config.model_path).exists() else None
    if config.model_loader is None and local is None:
        raise OlivepressError(f"{where}.model_path: {config.model_path}: no such file")
    script = script_path(config.model_script, config.script_dir, f"{where}.model_script") \
        if config.model_script is not None else None
    check_script_dir(config.script_dir, f"{where}.script_dir")
    io_config = config.io_config if isinstance(config.io_config, str) or config.io_config is None \
        else config.io_config.model_dump(exclude_defaults=True)
    return PyTorchModel(
        path=local.resolve() if local is not None else None,
        model_id=config.model_path if local is None else None,
        model_script=script,
        script_dir=Path(config.script_dir).resolve() if config.script_dir is not None else None,
        model_loader=config.model_loader, io_config=io_config, dummy_inputs_func=config.dummy_inputs_func)


def hf_model_folder(model_path: str, revision: str | None = None, file_format: str | None = None) -> Path:
    """A local Hugging Face folder, or a hub id's snapshot (downloaded unless cached); with `file_format`
    PyTorch.MLflow, the Hugging Face folder inside the MLflow model there."""
    local = Path(model_path)
    if _is_olivepress_output(local):
        return (local / "model").resolve()
    if local.exists():
        folder = local.resolve()
    elif is_hub_id(model_path):
        folder = hub_snapshot(model_path, revision, "input_model.model_path").folder
    else:
        raise OlivepressError(f"input_model.model_path: {model_path}: no such folder")
    if file_format == MLFLOW_FORMAT:
        return mlflow_hf_folder(folder, "input_model.model_path")
    if not (folder / "config.json").is_file():
        raise OlivepressError(f"input_model.model_path: {model_path} is not a Hugging Face model folder (no config.json)")
    return folder


def _is_olivepress_output(folder: Path) -> bool:
    """An output folder of an earlier run (model/, model_config.json) stands for the model it holds."""
    return (folder / MODEL_CONFIG_FILE).is_file() and (folder / "model" / "config.json").is_file()


def _output_adapter(folder: Path) -> Path | None:
    """The adapter an earlier run wrote beside its model (OUT/adapter/), if any."""
    adapter = folder / "adapter"
    if _is_olivepress_output(folder) and (adapter / "adapter_config.json").is_file():
        return adapter.resolve()
    return None


def _onnx_model(config: OnnxModelConfig) -> OnnxModel:
    path = Path(config.model_path).resolve()
    if not path.exists():
        kind = "file" if path.suffix == ".onnx" else "folder"
        raise OlivepressError(f"input_model.model_path: {config.model_path}: no such {kind}")
    if path.is_file() and path.suffix == ".onnx":
        return OnnxModel(path=path.parent, onnx_file_name=path.name)
    file_name = config.onnx_file_name or "model.onnx"
    if not (path / file_name).is_file():
        raise OlivepressError(f"input_model.model_path: {config.model_path} holds no {file_name}")
    return OnnxModel(path=path, onnx_file_name=file_name)


def hub_record(config: InputModelConfig, model: ModelHandle) -> dict[str, str] | None:
    """Where a hub model came from (repository, revision, and the commit of the snapshot `model`, its resolved
    handle, lies in: the commit its key holds); None for any other model."""
    if not isinstance(config, HfModelConfig) or not isinstance(model, HfModel) \
            or default_model.is_known_model(config.model_path) or not is_hub_id(config.model_path):
        return None
    return snapshot_record(config.model_path, config.revision, model.path)
