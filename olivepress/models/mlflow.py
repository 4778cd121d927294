"""MLflow models (Olive's model_file_format "PyTorch.MLflow"): the Hugging Face folder inside one.

An MLflow model is a folder with an `MLmodel` file (YAML); its `transformers` flavor names the folder holding the
Hugging Face files (`model_binary`, relative to the MLflow folder, or to its `data/` as older writers and Olive's
`data/model` have it).
"""

from pathlib import Path

import yaml

from olivepress.errors import OlivepressError

MLFLOW_FORMAT = "PyTorch.MLflow"
MLMODEL_FILE = "MLmodel"
_FALLBACKS = ("data/model", "model")


def is_mlflow_folder(folder: Path) -> bool:
    return (folder / MLMODEL_FILE).is_file()


def mlflow_hf_folder(folder: Path, where: str) -> Path:
    """The Hugging Face folder (with config.json) inside the MLflow model `folder`."""
    if not is_mlflow_folder(folder):
        raise OlivepressError(f"{where}: {folder} is not an MLflow model (no {MLMODEL_FILE}), but model_file_format is "
                              f"{MLFLOW_FORMAT}")
    for candidate in _candidates(folder, where):
        if (candidate / "config.json").is_file():
            return candidate.resolve()
    raise OlivepressError(f"{where}: the MLflow model {folder} holds no Hugging Face folder (config.json) where its "
                          f"transformers flavor or {' or '.join(_FALLBACKS)} would have it")


def _candidates(folder: Path, where: str) -> list[Path]:
    """The folders the MLmodel names (its transformers flavor's model_binary), then the usual places."""
    try:
        mlmodel = yaml.safe_load((folder / MLMODEL_FILE).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise OlivepressError(f"{where}: {folder / MLMODEL_FILE} is not YAML: {str(error).splitlines()[0]}") from None
    flavor = (mlmodel.get("flavors") or {}).get("transformers") or {} if isinstance(mlmodel, dict) else {}
    named = flavor.get("model_binary") if isinstance(flavor, dict) else None
    places = [folder / named, folder / "data" / named] if isinstance(named, str) else []
    return places + [folder / fallback for fallback in _FALLBACKS]
