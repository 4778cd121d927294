"""Hub models: downloaded through huggingface_hub from a local stand-in of the hub (tests/hub_standin.py)."""

import json
import shutil

import pytest
from conftest import builder_workflow
from hub_standin import HubStandin, go_offline

from olivepress.config.sections import DataConfig, HfModelConfig
from olivepress.data.container import HuggingfaceContainer
from olivepress.data.fingerprint import data_fingerprint
from olivepress.engine.keys import model_key
from olivepress.errors import OlivepressError
from olivepress.hashing import FingerprintMemo
from olivepress.models.resolve import hub_record, resolve_input_model


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_llama):
    standin = HubStandin()
    standin.publish("someorg/tiny", tiny_llama)
    with standin.serving(monkeypatch, tmp_path / "hf"):
        yield standin


def _model(repo: str = "someorg/tiny", **fields) -> HfModelConfig:
    return HfModelConfig(type="HfModel", model_path=repo, **fields)


def test_a_hub_model_downloads_once_then_is_read_offline(hub, tmp_path, monkeypatch):
    model = resolve_input_model(_model())
    assert (model.path / "config.json").is_file() and model.path.is_relative_to(tmp_path / "hf")
    commit = hub.repos["models/someorg/tiny"].refs["main"]
    assert hub_record(_model(), model) == {"repo_id": "someorg/tiny", "revision": "main", "commit": commit}
    go_offline(monkeypatch)
    served = len(hub.requests)
    assert resolve_input_model(_model()).path == model.path
    assert len(hub.requests) == served


def test_the_key_of_a_hub_model_is_its_commit_and_files(hub, tiny_llama, tmp_path):
    memo = FingerprintMemo(tmp_path / "memo.db")
    first = model_key(resolve_input_model(_model()), memo)
    old = hub.repos["models/someorg/tiny"].refs["main"]
    hub.publish("someorg/tiny", tiny_llama)  # the branch moves to a new commit with the same files
    moved = model_key(resolve_input_model(_model()), memo)
    assert moved != first
    assert model_key(resolve_input_model(_model(revision=old)), memo) == first  # a pinned commit keeps its key


def test_a_local_folder_key_has_no_commit(tiny_llama, tmp_path):
    memo = FingerprintMemo(tmp_path / "memo.db")
    copy = shutil.copytree(tiny_llama, tmp_path / "local")
    original = resolve_input_model(_model(str(tiny_llama)))
    assert model_key(resolve_input_model(_model(str(copy))), memo) == model_key(original, memo)


@pytest.mark.parametrize(("repo", "revision", "message"), [
    ("someorg/missing", None, "input_model.model_path: model 'someorg/missing' not found on http://127.0.0.1:"),
    ("someorg/tiny", "nobranch", "input_model.model_path: model 'someorg/tiny' has no revision 'nobranch'"),
])
def test_what_the_hub_refuses_is_one_line(hub, repo, revision, message):
    with pytest.raises(OlivepressError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as error:
        resolve_input_model(_model(repo, revision=revision))
    assert "\n" not in str(error.value)


def test_a_gated_repo_without_a_token_says_how_to_log_in(hub, tiny_llama):
    hub.repos["models/someorg/tiny"].gated = True
    with pytest.raises(OlivepressError, match="model 'someorg/tiny' is gated on .*`hf auth login` or set HF_TOKEN"):
        resolve_input_model(_model())


def test_offline_and_not_cached_says_what_to_download(hub, monkeypatch, tmp_path):
    go_offline(monkeypatch)
    with pytest.raises(OlivepressError, match=r"not in the local Hugging Face cache .* HF_HUB_OFFLINE is set: run "
                                              r"`hf download someorg/tiny --revision main`"):
        resolve_input_model(_model())


def test_no_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with pytest.raises(OlivepressError, match=r"could not be downloaded from http://127.0.0.1:9 \(no network\?\)"):
        resolve_input_model(_model())


def test_a_dry_run_does_not_download(hub, tmp_path, write_doc, cli):
    code, out, err = cli("run", "--config", write_doc(builder_workflow("someorg/tiny", tmp_path)), "--dry-run")
    assert code == 0, err
    assert "(not fetched yet: `run` fetches it)" in out
    assert not any("/resolve/" in request for request in hub.requests)


def test_a_missing_repo_exits_2(hub, tmp_path, write_doc, cli):
    code, out, err = cli("run", "--config", write_doc(builder_workflow("someorg/missing", tmp_path)))
    assert code == 2 and out == ""
    assert err.startswith("olivepress: error: input_model.model_path: model 'someorg/missing' not found on ")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_run_downloads_then_runs_offline_from_the_cache_then_rebuilds_a_new_commit(hub, tmp_path, write_doc, cli,
                                                                                   monkeypatch, tiny_llama):
    doc = write_doc(builder_workflow("someorg/tiny", tmp_path))
    code, _, err = cli("run", "--config", doc)
    assert code == 0, err
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    commit = hub.repos["models/someorg/tiny"].refs["main"]
    assert footprint["input_model"]["hub"] == {"repo_id": "someorg/tiny", "revision": "main", "commit": commit}
    with monkeypatch.context() as offline:
        go_offline(offline)
        code, out, err = cli("run", "--config", doc)
        assert code == 0, err
        assert "from cache" in out
    hub.publish("someorg/tiny", tiny_llama)
    code, out, err = cli("run", "--config", doc)
    assert code == 0, err
    assert "builder (ModelBuilder): ran" in out


# ---------------------------------------------------------------------------------------------- hub datasets

ROWS = [{"text": "one"}, {"text": "two"}, {"text": "three"}]


@pytest.fixture
def hub_rows(tmp_path, monkeypatch):
    standin = HubStandin()
    standin.publish_rows("someorg/rows", ROWS)
    with standin.serving(monkeypatch, tmp_path / "hf"):
        yield standin


def _hub_data(repo: str = "someorg/rows", **params) -> DataConfig:
    return DataConfig(name="data", load_dataset_config={"params": {"data_name": repo, **params}})


def test_a_hub_dataset_downloads_once_then_is_read_offline(hub_rows, monkeypatch):
    assert list(HuggingfaceContainer(_hub_data()).load_dataset()) == ROWS
    assert any(request.startswith("GET /datasets/someorg/rows/resolve/") for request in hub_rows.requests)
    go_offline(monkeypatch)
    served = len(hub_rows.requests)
    assert list(HuggingfaceContainer(_hub_data(split="train[:2]")).load_dataset()) == ROWS[:2]
    assert len(hub_rows.requests) == served


def test_the_fingerprint_of_a_hub_dataset_is_its_commit_and_config(hub_rows, tmp_path, monkeypatch):
    memo = FingerprintMemo(tmp_path / "memo.db")
    first = data_fingerprint(_hub_data(), memo)
    assert data_fingerprint(_hub_data(), memo) == first  # the same commit keeps it
    assert data_fingerprint(_hub_data(split="train[:1]"), memo) != first  # so does the config count
    hub_rows.publish_rows("someorg/rows", ROWS)  # the branch moves to a new commit with the same rows
    moved = data_fingerprint(_hub_data(), memo)
    assert moved != first
    go_offline(monkeypatch)
    assert data_fingerprint(_hub_data(), memo) == moved


def test_a_missing_hub_dataset_is_one_line(hub_rows):
    with pytest.raises(OlivepressError, match=r"^data_configs\.data: load_dataset_config\.params\.data_name \(not a "
                                              r"file format: .*\): dataset 'someorg/missing' not found on ") as error:
        HuggingfaceContainer(_hub_data("someorg/missing")).load_dataset()
    assert "\n" not in str(error.value)


def test_an_uncached_hub_dataset_offline_says_what_to_download(hub_rows, tmp_path, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(OlivepressError, match=r"HF_HUB_OFFLINE is set: run `hf download someorg/rows --repo-type "
                                              r"dataset --revision main`") as error:
        data_fingerprint(_hub_data(), FingerprintMemo(tmp_path / "memo.db"))
    assert "\n" not in str(error.value)
