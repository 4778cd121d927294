import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import write_tiny_model  # noqa: E402

from olivepress.cli import main  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA; without it they are skipped, saying so."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if not gpu_tests:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama")


@pytest.fixture(scope="session")
def tiny_phi3(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-phi3", "phi3")


@pytest.fixture
def one_thread():
    """For tiny tensors one torch thread is faster, and steady when other processes load the CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_doc(tmp_path):
    """Write a workflow document (dict) as JSON or YAML into tmp_path and return its path."""

    def write(document: dict, name: str = "workflow.json") -> Path:
        path = tmp_path / name
        text = json.dumps(document, indent=2) if name.endswith(".json") else yaml.safe_dump(document, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(capsys):
    """Run the olivepress CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def builder_workflow(model: Path, tmp_path: Path, **builder_config) -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": {"builder": {"type": "ModelBuilder", "config": {"precision": "int4", **builder_config}}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
