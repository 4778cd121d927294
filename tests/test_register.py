"""`olivepress register`: a model folder as an AzureML custom_model (an MLflow folder as an mlflow_model), like
`az ml model create`."""

import json
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azureml_double import RecordingService, cli, service  # noqa: F401 (cli, service: fixtures)

from olivepress.cli import main
from olivepress.systems.azureml import client

pytestmark = pytest.mark.azureml

WORKSPACE_VARS = ("AZUREML_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")


@pytest.fixture
def model_folder(tmp_path) -> Path:
    folder = tmp_path / "models" / "onnx-ao"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "genai_config.json").write_text("{}")
    return folder


def register_args(path: Path, *extra: str) -> list[str]:
    return ["register", "--name", "ft-for-travel", "--version", "1", "--path", str(path),
            "--resource-group", "RG", "--workspace-name", "WS", *extra]


def test_register_sends_a_custom_model(service, model_folder, cli, monkeypatch):
    monkeypatch.setenv("AZUREML_SUBSCRIPTION_ID", "sub-from-env")
    code, out, err = cli(*register_args(model_folder, "--description", "travel assistant", "--tags", "task=chat", "lab=olive"))
    assert code == 0, err
    assert service.connected == [("sub-from-env/RG/WS", None)]
    assert service.calls == [("create_model", "ft-for-travel", "1", "custom_model", str(model_folder))]
    assert out.strip() == "registered azureml:ft-for-travel:1 in workspace WS (RG)"


def test_an_mlflow_folder_is_an_mlflow_model(service, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("AZUREML_SUBSCRIPTION_ID", "sub")
    folder = tmp_path / "mlflow"
    (folder / "data" / "model").mkdir(parents=True)
    (folder / "data" / "model" / "config.json").write_text("{}")
    (folder / "MLmodel").write_text("flavors:\n  transformers:\n    model_binary: model\n")
    code, _, err = cli(*register_args(folder))
    assert code == 0, err
    assert service.calls == [("create_model", "ft-for-travel", "1", "mlflow_model", str(folder))]


def test_dry_run_writes_yaml_that_load_model_reads(service, model_folder, cli, tmp_path):
    from azure.ai.ml import load_model

    code, out, err = cli(*register_args(model_folder, "--subscription", "S", "--tags", "task=chat", "--dry-run"))
    assert code == 0, err
    assert service.connected == [] and service.calls == []
    (tmp_path / "model.yml").write_text(out)
    model = load_model(tmp_path / "model.yml")
    assert (model.name, model.version, model.type) == ("ft-for-travel", "1", "custom_model")
    assert Path(model.path) == model_folder and model.tags == {"task": "chat"}


def test_bad_input_is_one_clear_line(model_folder, tmp_path, cli, monkeypatch, capsys):
    code, _, err = cli(*register_args(tmp_path / "models" / "missing", "--dry-run"))
    assert (code, err.strip()) == (2, f"olivepress: error: --path: {tmp_path / 'models' / 'missing'}: no such file or folder")
    code, _, err = cli(*register_args(model_folder, "--tags", "novalue", "--dry-run"))
    assert (code, err.strip()) == (2, "olivepress: error: --tags: 'novalue' is not KEY=VALUE")
    for var in WORKSPACE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*register_args(model_folder))
    assert code == 2
    assert err.strip() == (
        "olivepress: error: azureml: no subscription id given: pass --subscription, set AZUREML_SUBSCRIPTION_ID or "
        "AZURE_SUBSCRIPTION_ID in the environment, or put subscription_id in a config.json "
        "(./config.json or ./.azureml/config.json)"
    )
    (tmp_path / "config.json").write_text(json.dumps({"subscription_id": "from-file"}))
    monkeypatch.setattr(client, "default_credential", lambda settings: _NoCredential())
    assert main(register_args(model_folder)) == 2  # the real connect: it signs in first
    assert "azureml: no Azure credentials found" in capsys.readouterr().err


class _NoCredential:
    def get_token(self, *scopes, **kwargs):
        raise ClientAuthenticationError("no credential in this sandbox")
