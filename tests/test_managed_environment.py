"""Olive 0.6's olive_managed_env: the PythonEnvironment olivepress builds from requirements_file (offline: the file
names a wheel written here by hand, installed with --no-index)."""

import base64
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from olivepress.config.sections import PythonEnvironmentSystemConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.systems.managed_environment import ENVIRONMENTS_FOLDER, managed_python
from olivepress.systems.python_environment import PythonEnvironmentSystem

MODULE = "olivepress_tinywheel"
TESTS_DIR = Path(__file__).parent


class WheelProbe(Pass[HfModel, PassConfig]):
    """Copies an HF folder and writes what its process imported from the wheel, and where its python is."""

    name = "WheelProbe"
    description = "Copy an HF model folder and write wheel.json."
    accepts = ("hf",)
    produces = "hf"
    Config = PassConfig

    def run(self, model: HfModel, config: PassConfig, context: PassContext) -> HfModel:
        import importlib
        import shutil
        import sys

        module = importlib.import_module(MODULE)
        shutil.copytree(model.path, context.output_dir, dirs_exist_ok=True)
        (context.output_dir / "wheel.json").write_text(json.dumps({"value": module.VALUE, "prefix": sys.prefix}))
        return HfModel(path=context.output_dir, task=model.task)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(folder: Path, value: int = 42) -> Path:
    """A pure-Python wheel by hand: a zip with the module and its dist-info (METADATA, WHEEL, RECORD)."""
    info = f"{MODULE}-0.1.dist-info"
    files = {f"{MODULE}/__init__.py": f"VALUE = {value}\n".encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 0.1\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: by-hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "\n".join([*(_record_line(name, data) for name, data in files.items()), f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{MODULE}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def _requirements(folder: Path, lines: list[str]) -> Path:
    file = folder / "requirements.txt"
    file.write_text("\n".join(["--no-index", *lines]) + "\n", encoding="utf-8")
    return file


@pytest.mark.slow
def test_the_environment_sees_the_requirements_and_the_running_packages_and_is_reused(tmp_path, monkeypatch, caplog):
    project = tmp_path / "project"
    project.mkdir()
    wheel = write_wheel(project)
    _requirements(project, [f"./{wheel.name}"])  # relative to the file's folder
    monkeypatch.chdir(project)
    caplog.set_level("INFO", logger="olivepress")
    config = PythonEnvironmentSystemConfig.model_validate(
        {"type": "PythonEnvironment", "olive_managed_env": True, "requirements_file": "requirements.txt"})
    system = PythonEnvironmentSystem("python_system", config, tmp_path / "cache")
    assert system.python.parent.parent.parent == tmp_path / "cache" / ENVIRONMENTS_FOLDER
    assert any("installing requirements.txt with pip" in record.message for record in caplog.records)
    seen = subprocess.run([str(system.python), "-c", f"import {MODULE}, olivepress, torch; print({MODULE}.VALUE)"],
                          capture_output=True, text=True, check=True)
    assert seen.stdout.strip() == "42"
    caplog.clear()
    again = PythonEnvironmentSystem("python_system", config, tmp_path / "cache")  # the same file's content
    assert again.python == system.python
    assert any("using the environment built before" in record.message for record in caplog.records)
    assert [path.name for path in (tmp_path / "cache" / ENVIRONMENTS_FOLDER).iterdir()] == [
        system.python.parent.parent.name]


@pytest.mark.slow
def test_a_pip_failure_is_one_line_and_leaves_nothing_half_built(tmp_path, monkeypatch):
    requirements = _requirements(tmp_path, ["olivepress-no-such-package-anywhere==1.0"])
    with pytest.raises(OlivepressError) as error:
        managed_python(str(requirements), tmp_path / "cache", "systems.python_system")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"systems.python_system.requirements_file: pip could not install {requirements}: "
                              "ERROR: ")
    assert "olivepress-no-such-package-anywhere" in message
    assert list((tmp_path / "cache" / ENVIRONMENTS_FOLDER).iterdir()) == []


def test_a_missing_requirements_file_is_one_line(tmp_path):
    with pytest.raises(OlivepressError, match=r"^systems.s.requirements_file: nope.txt: no such file$"):
        managed_python("nope.txt", tmp_path, "systems.s")
    assert not (tmp_path / ENVIRONMENTS_FOLDER).exists()


def _line_of(file: Path, text: str) -> int:
    return next(number for number, line in enumerate(file.read_text().splitlines(), 1) if text in line)


def test_validate_reads_olive_06s_managed_environment_and_checks_its_requirements_file(tmp_path, monkeypatch, cli):
    document = {"systems": {"python_system": {"type": "PythonEnvironment", "config": {
                    "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}],
                    "olive_managed_env": True, "requirements_file": "multiple_ep_requirements.txt"}}},
                "input_model": {"type": "HfModel", "model_path": "org/m"},
                "engine": {"host": "python_system", "target": "python_system"}}
    (tmp_path / "config.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("validate", "--config", "config.json")
    assert code == 2
    at = _line_of(tmp_path / "config.json", "requirements_file")
    assert [line for line in err.splitlines() if "error" in line] == [
        f"olivepress: error: config.json:{at}: systems.python_system.config.requirements_file: "
        "multiple_ep_requirements.txt: no such file"]
    (tmp_path / "multiple_ep_requirements.txt").write_text("onnxruntime\n", encoding="utf-8")
    code, out, err = cli("validate", "--config", "config.json")
    assert code == 0, err
    assert "engine.host: 'python_system' is the target too" in err + out


def test_a_managed_environment_takes_no_path_of_its_own():
    with pytest.raises(ValueError, match="olive_managed_env builds the environment; give one of them"):
        PythonEnvironmentSystemConfig.model_validate({"type": "PythonEnvironment", "olive_managed_env": True,
                                                      "python_environment_path": "/venv"})
    with pytest.raises(ValueError, match="Field required"):
        PythonEnvironmentSystemConfig.model_validate({"type": "PythonEnvironment"})


@pytest.mark.slow
def test_a_pass_runs_in_the_managed_environment_and_imports_the_requirements(tiny_llama, tmp_path, monkeypatch,
                                                                               write_doc, cli):
    write_wheel(tmp_path, value=7)
    _requirements(tmp_path, [f"./{MODULE}-0.1-py3-none-any.whl"])
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "systems": {"python_system": {"type": "PythonEnvironment", "config": {
            "olive_managed_env": True, "requirements_file": "requirements.txt",
            "environment_variables": {"PYTHONPATH": str(TESTS_DIR)}}}},
        "passes": {"probe": {"type": "test_managed_environment:WheelProbe"}},
        "engine": {"host": "python_system", "target": "python_system", "cache_dir": "cache", "output_dir": "out"}}
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    seen = json.loads((tmp_path / "out" / "model" / "wheel.json").read_text())
    assert seen["value"] == 7  # the wheel is not installed here: only the managed environment has it
    assert Path(seen["prefix"]).parent == (tmp_path / "cache" / ENVIRONMENTS_FOLDER).resolve()
    with pytest.raises(ImportError):
        __import__(MODULE)
