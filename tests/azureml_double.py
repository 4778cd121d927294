"""A recording stand-in for the AzureML service: it records every call, keeps what would be uploaded,
and runs a submitted job's command on this machine, as the job would run it on its compute."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from olivepress.cli import main
from olivepress.errors import OlivepressError

TESTS_DIR = Path(__file__).parent


class RecordingService:
    def __init__(self, root: Path, computes=("cpu-cluster",), status: str | None = None, log: list[str] | None = None,
                 models: dict | None = None, datastore: dict | None = None):
        self.root = root
        self.computes = computes
        self.status = status  # a fixed final status: the job is then not run
        self.log = log or []
        self.models = models or {}  # RegistryModel/WorkspaceModel -> a folder to copy
        self.datastore = datastore or {}  # datastore path -> a file or folder to copy
        self.calls: list[tuple] = []
        self.connected: list[tuple] = []  # (workspace, registry) of each connection made
        self.data: dict[str, Path] = {}  # created data assets: name -> what was uploaded
        self.jobs: dict[str, object] = {}
        self.outputs: dict[str, Path] = {}
        self.statuses: dict[str, str] = {}

    def connect(self, settings, workspace=None, registry=None):
        """What the engine and the commands are handed in place of `client.connect`: this double, every time."""
        self.connected.append((str(workspace) if workspace else None, registry))
        return self

    # ------------------------------------------------------------------ the interface

    def check_compute(self, name):
        self.calls.append(("check_compute", name))
        if name not in self.computes:
            raise OlivepressError(f"azureml: workspace sub/rg/ws has no compute named '{name}'")

    def find_data(self, name, version):
        self.calls.append(("find_data", name, version))
        return f"azureml:{name}:{version}" if name in self.data else None

    def create_data(self, data):
        self.calls.append(("create_data", data.name, data.version, data.type, str(data.path)))
        source, upload = Path(data.path), self.root / "uploads" / data.name
        upload.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, upload / source.name)
        else:
            shutil.copy(source, upload / source.name)
        self.data[data.name] = upload / source.name  # a copy, as the upload is: the local file may go away
        return f"azureml:{data.name}:{data.version}"

    def submit_job(self, job):
        name = f"job-{len(self.jobs) + 1}"
        self.calls.append(("submit_job", name))
        self.jobs[name] = job
        if self.status is not None:
            self.statuses[name] = self.status
        else:
            self.statuses[name] = self._run(name, job)
        return name

    def wait_job(self, name):
        self.calls.append(("wait_job", name))
        return self.statuses[name]

    def log_tail(self, name, lines):
        self.calls.append(("log_tail", name, lines))
        return self.log[-lines:]

    def download_job_output(self, name, output_name, into):
        self.calls.append(("download_job_output", name, output_name))
        shutil.copytree(self.outputs[name], into)

    def create_model(self, model):
        self.calls.append(("create_model", model.name, model.version, model.type, str(model.path)))
        return f"azureml:{model.name}:{model.version}"

    def download_model(self, asset, into):
        self.calls.append(("download_model", asset))
        shutil.copytree(self.models[asset], into)

    def download_datastore_path(self, asset, into):
        self.calls.append(("download_datastore_path", asset.datastore, asset.path))
        source = self.datastore[asset.path]
        if source.is_dir():
            shutil.copytree(source, into)
        else:
            into.mkdir()
            shutil.copy(source, into / source.name)

    # ------------------------------------------------------------------ running a job here

    def _run(self, name, job) -> str:
        work = self.root / name
        output = work / "outputs" / "output"
        output.mkdir(parents=True)
        (work / "cwd").mkdir()
        self.outputs[name] = output
        command = re.sub(r"\$\{\{outputs\.output\}\}", str(output), job.command)
        for input_name, job_input in job.inputs.items():
            command = command.replace(f"${{{{inputs.{input_name}}}}}", str(self._local(job_input.path)))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(TESTS_DIR), "PIP_DRY_RUN": "1", "PIP_NO_INDEX": "1"}  # never change the test venv
        done = subprocess.run(["bash", "-c", command], cwd=work / "cwd", env=env, capture_output=True, text=True)
        self.log = (done.stdout + done.stderr).splitlines()
        return "Completed" if done.returncode == 0 else "Failed"

    def _local(self, path: str) -> Path:
        """Where a job input lies here: a data asset created before, or a model or datastore path of the double."""
        asset = path.removeprefix("azureml:").rsplit(":", 1)[0]
        if asset in self.data:
            return self.data[asset]
        for key, folder in {**self.models, **self.datastore}.items():
            if str(key) in path or (hasattr(key, "name") and f"/models/{key.name}/" in path):
                return folder
        raise AssertionError(f"the job reads {path}, which was never uploaded")


@pytest.fixture
def service(tmp_path) -> RecordingService:
    """The double; `connected` records what was connected to."""
    return RecordingService(tmp_path / "azure")


@pytest.fixture
def cli(capsys, service):
    """The CLI in-process, handed the double as its way to connect to AzureML; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args], connect=service.connect)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
