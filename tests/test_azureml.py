"""AzureML systems, jobs and assets, against a recording double of the service (no Azure is reachable).

The double runs each submitted job's command on this machine, so the job side (the worker, `remote link`,
`olivepress run`, `remote export-steps`) runs for real; entities are dumped to YAML and loaded back with
azure-ai-ml's own loaders."""

import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azureml_double import RecordingService, cli, service  # noqa: F401 (cli, service: fixtures)
from pydantic import Field

import olivepress
from olivepress.data.files import local_data_files
from olivepress.errors import OlivepressError, RunFailedError
from olivepress.hashing import FingerprintMemo
from olivepress.models.azureml_assets import AssetStore, RegistryModel, WorkspaceModel
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.systems.azureml import client
from olivepress.systems.azureml.setup import WHEEL_INPUT
from olivepress.systems.azureml.workspace import Workspace

pytestmark = pytest.mark.azureml

IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
ROWS = [{"text": "Paris: the Louvre."}, {"text": "Tokyo: take the train."}, {"text": "Rome: walk."}]


class CountRowsConfig(PassConfig):
    data_config_fields: ClassVar[tuple[str, ...]] = ("data_config",)
    data_config: str = Field(description="The data to count.")


class CountRows(Pass[HfModel, CountRowsConfig]):
    """Copies the model and writes how many rows its data has (reads a data config, as trainers do)."""

    name = "CountRows"
    description = "Copy the model and write rows.txt."
    accepts = ("hf",)
    produces = "hf"
    Config = CountRowsConfig

    def run(self, model: HfModel, config: CountRowsConfig, context: PassContext) -> HfModel:
        from olivepress.data.container import HuggingfaceContainer

        rows = HuggingfaceContainer(context.data_config(config.data_config)).load_dataset()
        shutil.copytree(model.path, context.output_dir, dirs_exist_ok=True)
        (context.output_dir / "rows.txt").write_text(str(len(rows)))
        context.metrics["rows"] = float(len(rows))
        return HfModel(path=context.output_dir, task=model.task)


class AttachNoteConfig(PassConfig):
    note: str = Field("hello", description="The note.")


class AttachNote(Pass[HfModel, AttachNoteConfig]):
    """Leaves the model where it is and writes a side folder, as LoRA does with its adapter."""

    name = "AttachNote"
    description = "Write note.txt beside the model."
    accepts = ("hf",)
    produces = "hf"
    Config = AttachNoteConfig

    def run(self, model: HfModel, config: AttachNoteConfig, context: PassContext) -> HfModel:
        (context.output_dir / "note.txt").write_text(config.note)
        return HfModel(path=model.path, adapter_path=context.output_dir, task=model.task)


INSTALL = 'python -m pip install --quiet "$(ls ${{inputs.olivepress_wheel}}/*.whl)" && '


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    conda = tmp_path / "conda.yaml"
    conda.write_text("name: olivepress\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - olivepress[azureml]\n")
    return {"model": model, "data": data, "conda": conda}


def document(tmp_path: Path, files: dict[str, Path], **engine) -> dict:
    return {
        "workflow_id": "travel.wf",
        "input_model": {"type": "HfModel", "model_path": str(files["model"])},
        "systems": {"aml": {"type": "AzureML", "aml_compute": "cpu-cluster", "tags": {"team": "travel"},
                            "aml_docker_config": {"base_image": IMAGE, "conda_file_path": str(files["conda"])}}},
        "azureml_client": {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"},
        "data_configs": [{"name": "travel", "load_dataset_config": {"data_name": "json", "data_files": str(files["data"])}}],
        "passes": {"count": {"type": "test_azureml:CountRows", "data_config": "travel"},
                   "note": {"type": "test_azureml:AttachNote", "note": "from azure"}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"), **engine},
    }


def local_document(tmp_path: Path, files: dict[str, Path]) -> dict:
    doc = document(tmp_path, files)
    del doc["systems"], doc["azureml_client"]
    doc["engine"]["output_dir"] = str(tmp_path / "local-out")
    return doc


def asset_name(path: Path) -> str:
    memo = FingerprintMemo(path.parent / f".{path.name}.sqlite")
    digest = memo.fingerprint(path) if path.is_dir() else memo.file_hash(path)
    return f"olivepress-{digest[:24]}"


def footprint(folder: Path) -> dict:
    return json.loads((folder / "footprint.json").read_text())


def assert_reused_locally(tmp_path, files, write_doc, cli, remote_out: Path) -> None:
    """A local run of the same workflow finds every pass in the cache, under the same keys."""
    code, out, err = cli("run", "--config", write_doc(local_document(tmp_path, files), "local.json"))
    assert code == 0, err
    assert out.count("from cache") == 2 and " ran " not in out
    local, remote = footprint(tmp_path / "local-out"), footprint(remote_out)
    assert [p["output_key"] for p in local["passes"]] == [p["output_key"] for p in remote["passes"]]
    assert (tmp_path / "local-out" / "model" / "rows.txt").read_text() == "3"
    assert (tmp_path / "local-out" / "adapter" / "note.txt").read_text() == "from azure"


# ---------------------------------------------------------------------- AzureML as the target: a job per pass


def test_each_pass_runs_as_a_job_and_comes_home_under_the_local_key(service, files, tmp_path, write_doc, cli):
    from azure.ai.ml import load_job

    code, out, err = cli("run", "--config", write_doc(document(tmp_path, files, target="aml")))
    assert code == 0, err
    assert service.connected == [("sub/rg/ws", None)]
    assert service.calls[0] == ("check_compute", "cpu-cluster")
    assert [call[0] for call in service.calls if call[0] in ("submit_job", "download_job_output")] == [
        "submit_job", "download_job_output", "submit_job", "download_job_output"]

    job = service.jobs["job-1"]
    assert job.command == INSTALL + (
        "python -m olivepress.systems.worker --request ${{inputs.request}} --result ${{outputs.output}}/result.json "
        "--root model=${{inputs.model}} --root data_0=${{inputs.data_0}} --root output=${{outputs.output}}"
    )
    assert job.compute == "cpu-cluster"
    assert job.experiment_name == "travel_wf" and job.display_name == "travel.wf-count"
    assert job.tags == {"created_by": "olivepress", "team": "travel"}
    assert job.environment.image == IMAGE
    assert job.environment.conda_file["dependencies"][-1] == {"pip": ["olivepress[azureml]"]}
    assert {name: (i.type, i.path) for name, i in job.inputs.items() if name not in ("request", WHEEL_INPUT)} == {
        "model": ("uri_folder", f"azureml:{asset_name(files['model'])}:1"),
        "data_0": ("uri_file", f"azureml:{asset_name(files['data'])}:1"),
    }
    assert {name: o.type for name, o in job.outputs.items()} == {"output": "uri_folder"}
    assert ("create_data", asset_name(files["model"]), "1", "uri_folder", str(files["model"])) in service.calls

    request = json.loads(service.data[job.inputs["request"].path.split(":")[1]].read_text())
    assert request["pass"] == "test_azureml:CountRows" and request["config"] == {"data_config": "travel"}
    assert request["model"]["model_path"] == "root:model" and request["output_dir"] == "root:output/model"
    assert request["data_configs"][0]["load_dataset_config"]["params"]["data_files"] == ["root:data_0"]

    job.dump(tmp_path / "job.yml")  # azure-ai-ml reads back what it would send
    loaded = load_job(tmp_path / "job.yml")
    assert loaded._validate().passed and loaded.command == job.command
    assert {name: "azureml:" + i.path.removeprefix("azureml:") for name, i in loaded.inputs.items()} == {
        name: i.path for name, i in job.inputs.items()}

    second = service.jobs["job-2"]
    assert set(second.inputs) == {"model", "request", WHEEL_INPUT}  # the first pass's output, staged from the local cache
    out_dir = tmp_path / "out"
    assert (out_dir / "model" / "rows.txt").read_text() == "3"
    assert (out_dir / "adapter" / "note.txt").read_text() == "from azure"
    assert "rows 3" in out
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "entries").glob("*/entry.json")]
    assert {e["system"]["type"] for e in entries} == {"AzureML"}
    # the second pass kept its input model; the entry holds its own link of it (entries are self-contained)
    note_entry = next(e for e in entries if e["pass"] == "AttachNote")
    assert note_entry["model"]["model_path"].startswith("entry:inputs/")
    assert_reused_locally(tmp_path, files, write_doc, cli, out_dir)


def test_a_failed_pass_job_shows_its_status_and_log_and_keeps_nothing(service, files, tmp_path, write_doc, cli):
    service.status = "Failed"
    service.log = ["loading the model", "Traceback (most recent call last):", "ValueError: out of memory"]
    code, _, err = cli("run", "--config", write_doc(document(tmp_path, files, target="aml")))
    assert code == 1
    assert err.strip() == (
        "olivepress: error: pass 'count' failed: azureml job job-1 (pass count) ended Failed; the end of its log:\n"
        "    loading the model\n    Traceback (most recent call last):\n    ValueError: out of memory"
    )
    assert not any(call[0] == "download_job_output" for call in service.calls)
    assert not list((tmp_path / "cache" / "entries").iterdir()) and not list((tmp_path / "cache" / "staging").iterdir())
    assert not (tmp_path / "out").exists()


def test_a_missing_compute_is_named_before_anything_is_uploaded(service, files, tmp_path, write_doc, cli):
    doc = document(tmp_path, files, target="aml")
    doc["systems"]["aml"]["aml_compute"] = "gpu-cluster"
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2
    assert err.strip().endswith("azureml: workspace sub/rg/ws has no compute named 'gpu-cluster'")
    assert service.calls == [("check_compute", "gpu-cluster")]


# ---------------------------------------------------------------------- AzureML as the host: one job


def test_the_whole_workflow_runs_as_one_job_and_every_pass_comes_home(service, files, tmp_path, write_doc, cli):
    code, out, err = cli("run", "--config", write_doc(document(tmp_path, files, host="aml")))
    assert code == 0, err + "\n".join(service.log)
    assert list(service.jobs) == ["job-1"]
    job = service.jobs["job-1"]
    assert job.command == INSTALL + (
        "python -m olivepress.hosts.azureml_job link model=${{inputs.model}} "
        "data_0/train.jsonl=${{inputs.data_0}} && "
        "olivepress run --config ${{inputs.workflow}} --output_path ${{outputs.output}}/result && "
        "python -m olivepress.hosts.azureml_job export-steps --cache .olivepress-cache "
        "--footprint ${{outputs.output}}/result/footprint.json --into ${{outputs.output}}/steps"
    )
    sent = json.loads(service.data[job.inputs["workflow"].path.split(":")[1]].read_text())
    assert sent["input_model"] == {"type": "HfModel", "model_path": "inputs/model"}
    assert sent["systems"] == {"job": {"type": "LocalSystem", "accelerators": [
        {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}}
    assert sent["engine"] == {"cache_dir": ".olivepress-cache", "target": "job"}
    assert "azureml_client" not in sent
    assert sent["data_configs"][0]["load_dataset_config"]["params"]["data_files"] == ["inputs/data_0/train.jsonl"]
    assert sent["passes"]["count"] == {"type": "test_azureml:CountRows", "config": {"data_config": "travel"}}

    printed = footprint(tmp_path / "out")
    assert printed["host"] == {"system": "aml", "type": "AzureML", "job": "job-1"}
    assert (tmp_path / "out" / "model" / "rows.txt").read_text() == "3"
    assert "pass count (CountRows): ran" in out
    assert len(list((tmp_path / "cache" / "entries").iterdir())) == 2
    assert_reused_locally(tmp_path, files, write_doc, cli, tmp_path / "out")


def test_a_failed_workflow_job_leaves_no_output(service, files, tmp_path, write_doc, cli):
    from olivepress.systems.azureml.jobs import RemoteJobFailed

    service.status = "Canceled"
    code, _, err = cli("run", "--config", write_doc(document(tmp_path, files, host="aml")))
    assert code == 1 == RunFailedError.exit_code  # a job that ran and failed is a failed run, not bad input (2)
    assert issubclass(RemoteJobFailed, RunFailedError) and not issubclass(RemoteJobFailed, OlivepressError)
    assert err.strip() == "olivepress: error: azureml job job-1 (workflow travel.wf) ended Canceled; the end of its log: (no log)"
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache" / "entries").iterdir()) and not list((tmp_path / "cache" / "staging").iterdir())


# ---------------------------------------------------------------------- --dry-run


@pytest.mark.parametrize("role", ["host", "target"])
def test_dry_run_writes_entities_that_azure_ai_ml_loads(role, service, files, tmp_path, write_doc, cli):
    from azure.ai.ml import load_data, load_environment, load_job

    code, out, err = cli("run", "--config", write_doc(document(tmp_path, files, **{role: "aml"})), "--dry-run")
    assert code == 0, err
    assert service.connected == [] and service.calls == []
    folder = tmp_path / "out-azureml"
    written = sorted(path.name for path in folder.glob("*.yml"))
    job_file = "workflow-job.yml" if role == "host" else "pass-1-count.yml"
    [wheels] = (tmp_path / "cache" / "wheels").iterdir()
    assert written == sorted([job_file, job_file.replace(".yml", ".environment.yml"), *(
        f"data-{name}.yml" for name in {asset_name(files["model"]), asset_name(files["data"]), asset_name(wheels),
                                         *_request_assets(folder)})])
    assert [path.name for path in wheels.iterdir()] == [f"olivepress-{olivepress.__version__}-py3-none-any.whl"]
    assert f"azureml: wrote {folder / job_file}" in out
    job = load_job(folder / job_file)
    assert job._validate().passed and job.compute == "cpu-cluster" and job.command.startswith(INSTALL)
    assert job.inputs[WHEEL_INPUT].path.removeprefix("azureml:") == f"{asset_name(wheels)}:1"
    assert load_environment(folder / job_file.replace(".yml", ".environment.yml")).image == IMAGE
    model_asset = load_data(folder / f"data-{asset_name(files['model'])}.yml")
    assert (model_asset.type, str(model_asset.path)) == ("uri_folder", str(files["model"]))
    assert not (tmp_path / "out").exists()


def _request_assets(folder: Path) -> list[str]:
    """The names of the document or request assets (their content holds local paths, so they are read here)."""
    return [asset_name(path) for path in (folder / "files").rglob("*.json")]


def test_an_environment_that_does_not_validate_is_named(files, tmp_path, write_doc, cli):
    doc = document(tmp_path, files, target="aml")
    doc["systems"]["aml"]["aml_docker_config"]["conda_file_path"] = str(tmp_path / "missing.yaml")
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 2
    assert err.strip().endswith(f"systems.aml.aml_docker_config.conda_file_path: {tmp_path / 'missing.yaml'}: no such file")
    doc["systems"]["aml"]["aml_docker_config"] = {"base_image": IMAGE, "build_context_path": str(tmp_path)}
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 2
    assert "systems.aml.aml_docker_config: give either base_image or build_context_path" in err
    doc["systems"]["aml"]["aml_docker_config"] = {"base_image": IMAGE}
    doc["systems"]["aml"]["aml_compute"] = "9-gpus"
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 2
    assert err.strip().endswith("systems.aml.aml_compute: '9-gpus' is not an AzureML compute name "
                                "(a letter, then letters, digits or hyphens; 2 to 24 characters)")


def test_workspace_details_missing_everywhere_are_named(files, tmp_path, write_doc, cli, monkeypatch):
    for var in ("AZUREML_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    doc = document(tmp_path, files, host="aml")
    del doc["azureml_client"]["resource_group"]
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2
    assert err.strip() == (
        "olivepress: error: azureml: no resource group given: set azureml_client.resource_group in the workflow "
        "document, set AZUREML_RESOURCE_GROUP in the environment, or put resource_group in a config.json "
        "(./config.json or ./.azureml/config.json; azureml_client.aml_config_path names another)"
    )


# ---------------------------------------------------------------------- assets as model paths and data files


def test_a_registry_model_and_a_datastore_file_are_downloaded_once(service, files, tmp_path, write_doc, cli):
    nested = tmp_path / "registry" / "mlflow_model_folder" / "data" / "model"
    shutil.copytree(files["model"], nested)
    (tmp_path / "registry" / "MLmodel").write_text("flavors: {}")
    service.models[RegistryModel("azureml", "tiny-llama", "3")] = tmp_path / "registry"
    service.datastore["travel/train.jsonl"] = files["data"]
    doc = local_document(tmp_path, files)
    doc["input_model"]["model_path"] = "azureml://registries/azureml/models/tiny-llama/versions/3"
    doc["data_configs"][0]["load_dataset_config"]["data_files"] = ["azureml://datastores/workspaceblobstore/paths/travel/train.jsonl"]
    doc["azureml_client"] = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}
    for _ in range(2):
        shutil.rmtree(tmp_path / "local-out", ignore_errors=True)
        code, out, err = cli("run", "--config", write_doc(doc))
        assert code == 0, err
        assert (tmp_path / "local-out" / "model" / "weights.bin").read_bytes() == (files["model"] / "weights.bin").read_bytes()
        assert (tmp_path / "local-out" / "model" / "rows.txt").read_text() == "3"
    downloads = [call for call in service.calls if call[0].startswith("download")]
    assert downloads == [("download_model", RegistryModel("azureml", "tiny-llama", "3")),
                         ("download_datastore_path", "workspaceblobstore", "travel/train.jsonl")]
    assert service.connected == [(None, "azureml"), ("sub/rg/ws", None)]
    assets = list((tmp_path / "cache" / "assets").iterdir())
    assert len(assets) == 2 and all((folder / "asset.json").is_file() for folder in assets)


def test_a_workspace_model_resolves_with_the_document_workspace(service, files, tmp_path, write_doc, cli):
    service.models[WorkspaceModel("travel-base", "2")] = files["model"]
    doc = local_document(tmp_path, files)
    doc["input_model"]["model_path"] = "azureml:travel-base:2"
    doc["azureml_client"] = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}
    code, out, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    assert service.connected == [("sub/rg/ws", None)]


def test_an_interrupted_download_leaves_nothing_behind(service, files, tmp_path, write_doc, cli, monkeypatch):
    asset = WorkspaceModel("travel-base", "2")
    service.models[asset] = files["model"]
    real_download = RecordingService.download_model

    def broken(self, asset, into):
        shutil.copytree(files["model"], into)  # half the work done, then the connection drops
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(RecordingService, "download_model", broken)
    doc = local_document(tmp_path, files)
    doc["input_model"]["model_path"] = "azureml:travel-base:2"
    doc["azureml_client"] = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 1 and "connection reset by peer" in err
    assert not (tmp_path / "cache" / "assets").exists() or not list((tmp_path / "cache" / "assets").iterdir())
    assert not list((tmp_path / "cache" / "staging").iterdir())
    monkeypatch.setattr(RecordingService, "download_model", real_download)
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err


def test_a_malformed_asset_uri_names_the_forms(files, tmp_path, write_doc, cli):
    doc = local_document(tmp_path, files)
    doc["input_model"]["model_path"] = "azureml://registries/azureml/models/tiny"
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 2
    assert err.strip() == (
        "olivepress: error: azureml://registries/azureml/models/tiny: not an AzureML asset URI this version reads "
        "(the forms are azureml://registries/<registry>/models/<name>/versions/<version>, azureml:<name>:<version>, "
        "azureml://datastores/<datastore>/paths/<path>)"
    )


def test_an_asset_store_downloads_through_the_connect_it_is_handed(service, files, tmp_path):
    service.datastore["travel/"] = files["data"].parent / "folder"
    (files["data"].parent / "folder").mkdir()
    shutil.copy(files["data"], files["data"].parent / "folder" / "b.jsonl")
    shutil.copy(files["data"], files["data"].parent / "folder" / "a.jsonl")
    store = AssetStore(tmp_path / "assets-cache", lambda asset: service)
    uri = "azureml://datastores/workspaceblobstore/paths/travel/"
    assert [file.name for file in local_data_files([uri], store)] == ["a.jsonl", "b.jsonl"]
    assert [file.name for file in local_data_files(uri, store)] == ["a.jsonl", "b.jsonl"]
    assert service.calls == [("download_datastore_path", "workspaceblobstore", "travel/")]


def test_an_asset_read_without_a_store_is_one_line():
    uri = "azureml://datastores/workspaceblobstore/paths/travel/train.jsonl"
    with pytest.raises(OlivepressError) as error:
        local_data_files(uri)
    assert str(error.value) == f"{uri}: AzureML assets are read only in a workflow run, which downloads them into its cache"


# ---------------------------------------------------------------------- workspace, credentials, the client


class FakeCredential(TokenCredential):
    """Hands out a token without asking anyone (or fails as DefaultAzureCredential does with no sign-in)."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.extend(scopes)
        if self.fail:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
        return AccessToken("token", 4102444800)


def test_the_ml_client_is_built_for_the_workspace_without_calling_the_service():
    credential = FakeCredential()
    ml_client = client.ml_client(credential, Workspace("sub-1", "rg-1", "ws-1"))
    assert (ml_client.subscription_id, ml_client.resource_group_name, ml_client.workspace_name) == ("sub-1", "rg-1", "ws-1")
    assert credential.scopes == []
    assert client.MLClientService(ml_client).client is ml_client


def test_missing_credentials_are_one_line_naming_the_ways_to_sign_in():
    client.check_credential(FakeCredential())
    with pytest.raises(OlivepressError) as error:
        client.check_credential(FakeCredential(fail=True))
    assert str(error.value) == (
        "azureml: no Azure credentials found (azure-identity's DefaultAzureCredential): run `az login`, or set "
        "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run where a managed identity is assigned"
    )


def test_a_missing_extra_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "azure.ai.ml", None)
    with pytest.raises(OlivepressError) as error:
        client.require_azure()
    assert str(error.value) == "AzureML support is not installed: pip install 'olivepress[azureml]'"


def test_workspace_details_come_from_flags_document_environment_and_config_json(tmp_path, monkeypatch):
    from olivepress.config.sections import AzureMLClientConfig
    from olivepress.systems.azureml.workspace import resolve_workspace

    for var in ("AZUREML_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "file-sub", "resource_group": "file-rg", "workspace_name": "file-ws"}))
    assert str(resolve_workspace(None)) == "file-sub/file-rg/file-ws"
    monkeypatch.setenv("AZUREML_RESOURCE_GROUP", "env-rg")
    document = AzureMLClientConfig(workspace_name="doc-ws")
    assert str(resolve_workspace(document)) == "file-sub/env-rg/doc-ws"
    assert str(resolve_workspace(document, {"subscription_id": "flag-sub"})) == "flag-sub/env-rg/doc-ws"
    with pytest.raises(OlivepressError, match="aml_config_path: nope.json: no such file"):
        resolve_workspace(AzureMLClientConfig(aml_config_path="nope.json"))


def test_a_job_can_leave_olivepress_to_its_environment(service, files, tmp_path, write_doc, cli):
    doc = document(tmp_path, files, host="aml")
    doc["systems"]["aml"]["install_olivepress"] = False
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 0, err
    job = load_job_file(tmp_path / "out-azureml" / "workflow-job.yml")
    assert job.command.startswith("python -m olivepress.hosts.azureml_job link") and WHEEL_INPUT not in job.inputs
    assert not (tmp_path / "cache" / "wheels").exists()


def test_hf_token_logs_the_job_in_with_the_key_vault_secret(service, files, tmp_path, write_doc, cli):
    doc = document(tmp_path, files, host="aml")
    doc["systems"]["aml"]["hf_token"] = True
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 2 and err.strip().endswith("systems.aml.hf_token: name the key vault holding the 'hf-token' secret "
                                              "in azureml_client.keyvault_name")
    doc["azureml_client"]["keyvault_name"] = "travel-vault"
    doc["systems"]["aml"]["accelerators"] = [{"device": "gpu"}]
    code, _, err = cli("run", "--config", write_doc(doc), "--dry-run")
    assert code == 0, err
    job = load_job_file(tmp_path / "out-azureml" / "workflow-job.yml")
    assert job.command.startswith('python -m pip install --quiet "$(ls ${{inputs.olivepress_wheel}}/*.whl)[azureml,cuda]" '
                                  "&& python -m olivepress.systems.azureml.hf_login && ")
    assert job.environment_variables == {"HF_LOGIN": "1", "KEYVAULT_NAME": "travel-vault"}


def load_job_file(path: Path):
    from azure.ai.ml import load_job

    return load_job(path)
