"""A third-party pass installed as a package is found through its entry point and runs from a document."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    source = shutil.copytree(PLUGIN_DIR, tmp_path_factory.mktemp("src") / "plugin")  # builds leave files behind
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True, capture_output=True,
    )
    return site


def empty_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return model


def olivepress(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "olivepress", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_installed_plugin_is_listed_and_runs_from_a_document(plugin_site, tmp_path):
    listing = olivepress(plugin_site, "passes", cwd=tmp_path)
    assert listing.returncode == 0
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in listing.stdout.splitlines()}
    assert rows["AddNote"] == "hf -> hf Copy a Hugging Face model folder and write NOTE.txt into it."

    model = empty_model(tmp_path)
    doc = tmp_path / "workflow.yaml"
    doc.write_text(f"input_model: {{type: HfModel, model_path: {model}}}\n"
                   "passes:\n  greet: {type: AddNote, note: from a plugin}\n")
    result = olivepress(plugin_site, "run", "--config", str(doc), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output" / "model" / "NOTE.txt").read_text() == "from a plugin"
    footprint = json.loads((tmp_path / "output" / "footprint.json").read_text())
    assert footprint["passes"][0]["type"] == "AddNote"


def test_installed_plugin_parameters_are_in_the_schema(plugin_site, tmp_path):
    result = olivepress(plugin_site, "schema", cwd=tmp_path)
    schema = json.loads(result.stdout)
    assert schema["$defs"]["AddNotePass"]["properties"]["note"]["description"] == "The text written to NOTE.txt."
    builtin_only = json.loads(olivepress(plugin_site, "schema", "--builtin-only", cwd=tmp_path).stdout)
    assert "AddNotePass" not in builtin_only["$defs"]


def test_module_class_reference_needs_no_installation(tmp_path):
    model = empty_model(tmp_path)
    doc = tmp_path / "workflow.json"
    doc.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": str(model)},
                               "passes": {"n": {"type": "olivepress_demo_plugin:AddNote", "note": "by reference"}}}))
    result = olivepress(PLUGIN_DIR, "run", "--config", str(doc), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output" / "model" / "NOTE.txt").read_text() == "by reference"
    missing = olivepress(PLUGIN_DIR, "run", "--config", str(doc).replace("workflow", "nope"), cwd=tmp_path)
    assert missing.returncode == 2


def test_bad_module_reference_is_a_clear_error(tmp_path):
    model = empty_model(tmp_path)
    doc = tmp_path / "workflow.json"
    doc.write_text(json.dumps({"input_model": {"type": "HfModel", "model_path": str(model)},
                               "passes": {"n": {"type": "no_such_pkg.mod:Pass"}}}))
    result = olivepress(PLUGIN_DIR, "run", "--config", str(doc), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"olivepress: error: {doc}:1: passes.n.type: cannot import pass type 'no_such_pkg.mod:Pass': "
        "No module named 'no_such_pkg'"
    )
