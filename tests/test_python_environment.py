"""PythonEnvironment: passes run in a second venv made here, and their output lands in the same cache
under the same key as a local run's."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from pydantic import Field

from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).parent


class ProbeConfig(PassConfig):
    fail: bool = Field(False, description="Raise instead of writing the output.")


class EnvironmentProbe(Pass[HfModel, ProbeConfig]):
    """Copies an HF folder and writes what its process saw: the interpreter, a variable, PATH."""

    name = "EnvironmentProbe"
    description = "Copy an HF model folder and write seen.json."
    accepts = ("hf",)
    produces = "hf"
    Config = ProbeConfig

    def run(self, model: HfModel, config: ProbeConfig, context: PassContext) -> HfModel:
        if config.fail:
            raise ValueError("the probe was asked to fail")
        shutil.copytree(model.path, context.output_dir, dirs_exist_ok=True)
        seen = {"prefix": sys.prefix, "probe": os.environ.get("OLIVEPRESS_PROBE"),
                "path": os.environ["PATH"].split(os.pathsep)}
        (context.output_dir / "seen.json").write_text(json.dumps(seen))
        context.metrics["probe_metric"] = 1.5
        return HfModel(path=context.output_dir, task=model.task)


@pytest.fixture(scope="module")
def second_venv(tmp_path_factory) -> Path:
    """A venv without pip whose site-packages reach this one's (olivepress, torch, ...) through a .pth file."""
    venv = tmp_path_factory.mktemp("envs") / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    here = sysconfig.get_path("purelib")
    (site_packages / "reach_test_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return venv


def workflow(model: Path, tmp_path: Path, venv: Path | None, passes: dict) -> dict:
    document = {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": passes,
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    if venv is not None:
        document["systems"] = {"other": {
            "type": "PythonEnvironment", "python_environment_path": str(venv),
            "environment_variables": {"OLIVEPRESS_PROBE": "seen by the child", "PYTHONPATH": str(TESTS_DIR)},
            "prepend_to_path": [str(tmp_path / "tools")],
        }}
        document["engine"]["target"] = "other"
    return document


def test_pass_runs_in_the_other_environment_with_its_variables(second_venv, tiny_llama, tmp_path, write_doc, cli):
    probe = {"probe": {"type": "test_python_environment:EnvironmentProbe"}}
    code, out, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, second_venv, probe)))
    assert code == 0, err
    seen = json.loads((tmp_path / "out" / "model" / "seen.json").read_text())
    assert Path(seen["prefix"]).resolve() == second_venv.resolve()
    assert seen["probe"] == "seen by the child"
    assert seen["path"][:2] == [str(tmp_path / "tools"), str(second_venv / "bin")]
    assert "probe_metric 1.5" in out
    entry = json.loads(next((tmp_path / "cache" / "entries").glob("*/entry.json")).read_text())
    assert entry["system"]["type"] == "PythonEnvironment" and entry["metrics"] == {"probe_metric": 1.5}


def test_a_real_pass_lands_under_the_key_a_local_run_uses(second_venv, tiny_llama, tmp_path, write_doc, cli):
    builder = {"builder": {"type": "ModelBuilder", "precision": "fp32"}}
    code, out, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, second_venv, builder), "env.json"))
    assert code == 0, err
    assert "ran in" in out
    built = json.loads((tmp_path / "out" / "footprint.json").read_text())["passes"][0]
    assert (tmp_path / "out" / "model" / "model.onnx").is_file()
    shutil.rmtree(tmp_path / "out")
    code, out, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, None, builder), "local.json"))
    assert code == 0, err
    assert "from cache" in out
    again = json.loads((tmp_path / "out" / "footprint.json").read_text())["passes"][0]
    assert again["output_key"] == built["output_key"]


def test_a_failure_in_the_child_is_the_pass_failure(second_venv, tiny_llama, tmp_path, write_doc, cli):
    failing = {"probe": {"type": "test_python_environment:EnvironmentProbe", "fail": True}}
    code, _, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, second_venv, failing)))
    assert code == 1
    assert err.strip().splitlines()[-1] == "olivepress: error: pass 'probe' failed: ValueError: the probe was asked to fail"
    assert not list((tmp_path / "cache" / "entries").iterdir())
    assert not (tmp_path / "out").exists()


def test_an_environment_without_python_is_a_clear_error(tiny_llama, tmp_path, write_doc, cli):
    probe = {"probe": {"type": "test_python_environment:EnvironmentProbe"}}
    code, _, err = cli("run", "--config", write_doc(workflow(tiny_llama, tmp_path, tmp_path / "no-env", probe)))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("olivepress: error: ")
    assert err.strip().endswith(f".json:19: systems.other.python_environment_path: {tmp_path / 'no-env'}: no such folder")
