"""MLflow models (model_file_format PyTorch.MLflow): the Hugging Face folder inside is what the passes read."""

import shutil

import pytest
import yaml
from conftest import builder_workflow

from olivepress.config.sections import HfModelConfig
from olivepress.errors import OlivepressError
from olivepress.models.resolve import resolve_input_model


def mlflow_model(tiny_llama, folder, binary: str | None) -> None:
    """An MLflow layout around the tiny model: MLmodel naming `binary` (under data/ when None, as Olive's)."""
    inner = folder / (binary or "data/model")
    shutil.copytree(tiny_llama, inner)
    flavor = {"transformers": {"model_binary": binary, "task": "text-generation"}} if binary else {}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": {"loader_module": "mlflow"}, **flavor}}))


@pytest.mark.parametrize("binary", ["model", None])
def test_the_hugging_face_folder_inside_an_mlflow_model_is_read(tiny_llama, tmp_path, binary):
    mlflow_model(tiny_llama, tmp_path / "mlflow", binary)
    config = HfModelConfig(type="HfModel", model_path=str(tmp_path / "mlflow"), model_file_format="PyTorch.MLflow")
    assert resolve_input_model(config).path == (tmp_path / "mlflow" / (binary or "data/model")).resolve()


def test_a_folder_without_mlmodel_is_one_line(tiny_llama, tmp_path):
    config = HfModelConfig(type="HfModel", model_path=str(tiny_llama), model_file_format="PyTorch.MLflow")
    with pytest.raises(OlivepressError, match=f"input_model.model_path: {tiny_llama} is not an MLflow model"):
        resolve_input_model(config)


def test_an_unknown_format_is_refused(tmp_path, write_doc, cli):
    doc = builder_workflow(tmp_path, tmp_path)
    doc["input_model"]["model_file_format"] = "PyTorch.EntireModel"
    code, _, err = cli("validate", "--config", write_doc(doc))
    assert code == 2 and "model_file_format" in err


@pytest.mark.slow
def test_a_document_on_an_mlflow_model_runs(tiny_llama, tmp_path, write_doc, cli):
    mlflow_model(tiny_llama, tmp_path / "mlflow", "model")
    doc = builder_workflow(tmp_path / "mlflow", tmp_path)
    doc["input_model"]["model_file_format"] = "PyTorch.MLflow"
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    assert (tmp_path / "out" / "model" / "genai_config.json").is_file()
