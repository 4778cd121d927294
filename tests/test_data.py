"""The data container: loading local files, templates, join vs line-by-line, splits, calibration rows, fingerprints."""

import json

import pytest
import torch
from pydantic import ValidationError

from olivepress.config.sections import DataConfig
from olivepress.data.container import (
    HuggingfaceContainer,
    default_calibration_data,
    seed_data_file,
)
from olivepress.data.fingerprint import data_fingerprint
from olivepress.data.tokens import IGNORE_INDEX
from olivepress.errors import OlivepressError
from olivepress.hashing import FingerprintMemo
from olivepress.models.loading import load_tokenizer

TRAVEL_TEMPLATE = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"
TONE_TEMPLATE = "### Text: {phrase}\n### The tone is:\n{tone}"


def data_config(data_files, name="data", data_name="json", **pre_process) -> DataConfig:
    files = [str(f) for f in data_files] if isinstance(data_files, list) else str(data_files)
    return DataConfig(name=name, load_dataset_config={"params": {"data_name": data_name, "data_files": files}},
                      pre_process_data_config={"params": pre_process})


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return load_tokenizer(tiny_llama)


def token_stream(tokenizer, texts: list[str]) -> list[int]:
    stream = []
    for ids in tokenizer(texts)["input_ids"]:
        stream += ids + ([] if ids[-1] == tokenizer.eos_token_id else [tokenizer.eos_token_id])
    return stream


def test_travel_seed_data_packs_every_token_once_into_full_rows(tokenizer):
    container = HuggingfaceContainer(data_config(seed_data_file("data_sample_travel.jsonl"),
                                                 text_template=TRAVEL_TEMPLATE, max_seq_len=128))
    rows = container.load_dataset()
    assert len(rows) == 289 and rows.column_names == ["prompt", "response"]
    assert not rows[288]["response"].endswith("\r")  # CRLF line ends and no final newline
    texts = container.texts(tokenizer)
    assert texts[0] == ("<|user|>\nWhat's a must-see in Paris?<|end|>\n<|assistant|>\nOh la la! You simply must twirl "
                        "around the Eiffel Tower and snap a chic selfie! Want to feel like royalty? How about a visit "
                        "to the grand Palace of Versailles next?<|end|>")

    train, eval_ = container.datasets(tokenizer)
    assert eval_ is None
    assert train.column_names == ["input_ids", "labels", "attention_mask"]
    stream = token_stream(tokenizer, texts)
    assert {len(row) for row in train["input_ids"]} == {128}
    assert len(train) == len(stream) // 128  # only the last partial row is dropped
    assert [t for row in train["input_ids"] for t in row] == stream[: len(train) * 128]
    assert train["labels"] == train["input_ids"]
    assert {v for row in train["attention_mask"] for v in row} == {1}


def test_tone_seed_data_line_by_line(tokenizer):
    source = seed_data_file("dataset-classification.json")  # JSON Lines despite its name
    container = HuggingfaceContainer(data_config(source, text_template=TONE_TEMPLATE, max_seq_len=48,
                                                 corpus_strategy="line-by-line", use_attention_mask=False))
    train, _ = container.datasets(tokenizer)
    assert len(train) == 1464 and train.column_names == ["input_ids", "labels"]
    texts = container.texts(tokenizer)
    assert texts[0] == "### Text: I'm thrilled to start my new job!\n### The tone is:\njoy"
    full = token_stream(tokenizer, [texts[0]])
    assert train[0]["input_ids"] == full[:48]
    lengths = [len(row) for row in train["input_ids"]]
    assert max(lengths) == 48 and min(lengths) < 48  # truncated, not padded


def test_line_by_line_padding_and_batches(tokenizer, tmp_path):
    source = tmp_path / "lines.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["short", "a longer line of text here", "mid one"]))
    padded = HuggingfaceContainer(data_config(source, corpus_strategy="line-by-line", pad_to_max_len=True, max_seq_len=32))
    train, _ = padded.datasets(tokenizer)
    short = tokenizer("short")["input_ids"] + [tokenizer.eos_token_id]
    assert train[0]["input_ids"] == short + [tokenizer.pad_token_id] * (32 - len(short))
    assert train[0]["labels"] == short + [IGNORE_INDEX] * (32 - len(short))
    assert train[0]["attention_mask"] == [1] * len(short) + [0] * (32 - len(short))

    unpadded = HuggingfaceContainer(DataConfig(
        name="lines", load_dataset_config={"params": {"data_name": "json", "data_files": str(source)}},
        pre_process_data_config={"params": {"corpus_strategy": "line-by-line", "max_seq_len": 32}},
        dataloader_config={"params": {"batch_size": 2}},
    ))
    first = next(iter(unpadded.dataloader(tokenizer)))
    longer = len(tokenizer("a longer line of text here")["input_ids"]) + 1
    assert first["input_ids"].shape == (2, longer)  # padded to the batch's longest row only
    assert first["labels"][0, len(short):].tolist() == [IGNORE_INDEX] * (longer - len(short))
    assert first["attention_mask"].sum(dim=1).tolist() == [len(short), longer]


def test_eval_split_by_count_and_fraction(tokenizer):
    travel = seed_data_file("data_sample_travel.jsonl")
    by_count = HuggingfaceContainer(data_config(travel, text_template=TRAVEL_TEMPLATE, corpus_strategy="line-by-line",
                                                eval_dataset_size=40, max_samples=200))
    train, eval_ = by_count.datasets(tokenizer)
    assert (len(train), len(eval_)) == (160, 40)
    train, eval_ = by_count.datasets(tokenizer, eval_dataset_size=0.25)  # a pass may override the size
    assert (len(train), len(eval_)) == (150, 50)
    again_train, _ = by_count.datasets(tokenizer, eval_dataset_size=0.25)
    assert again_train["input_ids"] == train["input_ids"]  # the split is seeded


def test_messages_rendered_with_the_chat_template(tokenizer, tmp_path):
    source = tmp_path / "chat.jsonl"
    messages = [{"role": "user", "content": "Best way to get around Tokyo?"}, {"role": "assistant", "content": "Take the train."}]
    source.write_text(json.dumps({"messages": messages}) + "\n")
    container = HuggingfaceContainer(data_config(source, use_chat_template=True))
    assert container.texts(tokenizer) == [
        "<|im_start|>user\nBest way to get around Tokyo?<|im_end|>\n<|im_start|>assistant\nTake the train.<|im_end|>\n"
    ]


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(OlivepressError, match=f"data_configs.data: data file not found: {missing}"):
        HuggingfaceContainer(data_config(missing)).load_dataset()


def test_bad_json_lines_names_the_line(tmp_path):
    source = tmp_path / "broken.jsonl"
    source.write_bytes(b'{"prompt": "a", "response": "b"}\r\n{"prompt": "c", "response": "d"}\r\n{"prompt": "e", "resp\r\n')
    with pytest.raises(OlivepressError, match=rf"{source}:3: not valid JSON Lines"):
        HuggingfaceContainer(data_config(source)).load_dataset()


def test_one_json_document_loads_and_its_errors_name_the_line(tmp_path):
    source = tmp_path / "records.json"
    source.write_text(json.dumps([{"text": "one"}, {"text": "two"}], indent=2))
    assert HuggingfaceContainer(data_config(source)).load_dataset()["text"] == ["one", "two"]
    source.write_text('[\n  {"text": "one"},\n  {"text": "two"\n]\n')
    with pytest.raises(OlivepressError, match=rf"{source}:4: not valid JSON"):
        HuggingfaceContainer(data_config(source)).load_dataset()


def test_template_field_missing_names_field_and_fields_present(tokenizer):
    container = HuggingfaceContainer(data_config(seed_data_file("dataset-classification.json"),
                                                 text_template="{phrase} -> {label}"))
    with pytest.raises(OlivepressError) as error:
        container.datasets(tokenizer)
    assert str(error.value) == ("data_configs.data.pre_process_data_config.params.text_template: "
                                "the data has no field 'label'; its fields are phrase, tone")


def test_join_needs_at_least_one_full_row(tokenizer, tmp_path):
    source = tmp_path / "tiny.jsonl"
    source.write_text('{"text": "short"}\n')
    with pytest.raises(OlivepressError, match="fewer than max_seq_len 1024; lower max_seq_len"):
        HuggingfaceContainer(data_config(source)).datasets(tokenizer)


def test_default_calibration_data_covers_both_seed_files(tokenizer):
    container = HuggingfaceContainer(default_calibration_data())
    texts = container.texts(tokenizer)
    assert len(texts) == 289 + 1464
    assert texts[0].startswith("What's a must-see in Paris?\nOh la la!")
    assert texts[289] == "I'm thrilled to start my new job!"  # tone rows: the phrase alone
    rows = container.calibration_rows(tokenizer, count=8, seq_len=256)
    assert rows.shape == (8, 256) and rows.dtype == torch.long
    assert rows.flatten().tolist() == token_stream(tokenizer, texts)[: 8 * 256]
    everything = container.calibration_rows(tokenizer, count=10_000, seq_len=256)
    assert everything.shape[0] == len(token_stream(tokenizer, texts)) // 256


def test_calibration_rows_pack_even_for_line_by_line_data(tokenizer, tmp_path):
    source = tmp_path / "few.jsonl"
    source.write_text("".join(json.dumps({"text": f"line number {i}"}) + "\n" for i in range(3)))
    container = HuggingfaceContainer(data_config(source, corpus_strategy="line-by-line"))
    stream = token_stream(tokenizer, [f"line number {i}" for i in range(3)])
    assert container.calibration_rows(tokenizer, count=100, seq_len=4).shape == (len(stream) // 4, 4)
    assert container.calibration_rows(tokenizer, count=5, seq_len=4).shape == (5, 4)
    with pytest.raises(OlivepressError, match=f"calibration data too short: {len(stream)} tokens, need at least 512"):
        container.calibration_rows(tokenizer, count=5, seq_len=512)


def test_fingerprint_follows_content(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_text('{"text": "abc"}\n')
    memo = FingerprintMemo(tmp_path / "memo.sqlite")
    config = data_config(source)
    first = data_fingerprint(config, memo)
    assert data_fingerprint(config, memo) == first
    source.write_text('{"text": "abd"}\n')  # one byte changed, same size
    changed = data_fingerprint(config, memo)
    assert changed != first
    assert data_fingerprint(data_config(source, max_seq_len=64), memo) not in (first, changed)  # settings count too
    with pytest.raises(OlivepressError, match="data file not found"):
        data_fingerprint(data_config(tmp_path / "gone.jsonl"), memo)


# ---------------------------------------------------------------- Olive's data configs: user code, dummy containers

LOADER_SCRIPT = """
from olive.data.registry import Registry
import datasets


@Registry.register_dataset()
def load_greetings(count, word="hello"):
    return datasets.Dataset.from_dict({"text": [f"{word} {n}" for n in range(count)]})


def keep_even(rows, modulo=2):
    return rows.filter(lambda row: int(row["text"].split()[-1]) % modulo == 0)
"""


def _user_data(script, **pre_process) -> DataConfig:
    return DataConfig.model_validate({
        "name": "greetings", "user_script": str(script),
        "load_dataset_config": {"type": "load_greetings", "count": 6, "word": "hi"},
        "pre_process_data_config": pre_process or {},
    })


def test_user_script_components_are_called_by_name_with_their_params(tmp_path, tiny_llama):
    script = tmp_path / "user.py"
    script.write_text(LOADER_SCRIPT, encoding="utf-8")
    container = HuggingfaceContainer(_user_data(script))
    assert container.load_dataset()["text"] == ["hi 0", "hi 1", "hi 2", "hi 3", "hi 4", "hi 5"]
    filtered = HuggingfaceContainer(_user_data(script, type="keep_even", modulo=3))
    assert filtered.texts(load_tokenizer(tiny_llama)) == ["hi 0", "hi 3"]


def test_the_user_script_counts_by_content_in_the_fingerprint(tmp_path):
    memo = FingerprintMemo(tmp_path / "memo.db")
    first, second = tmp_path / "a" / "user.py", tmp_path / "b" / "user.py"
    for script in (first, second):
        script.parent.mkdir()
        script.write_text(LOADER_SCRIPT, encoding="utf-8")
    assert data_fingerprint(_user_data(first), memo) == data_fingerprint(_user_data(second), memo)
    second.write_text(LOADER_SCRIPT.replace("hello", "hey"), encoding="utf-8")
    assert data_fingerprint(_user_data(first), memo) != data_fingerprint(_user_data(second), memo)


@pytest.mark.parametrize("config, problem", [
    ({"load_dataset_config": {"type": "load_greetings"}},
     "load_dataset_config.type: 'load_greetings' is not a built-in component (huggingface_dataset); it names a "
     "function of user_script, which the data config does not give"),
    ({"load_dataset_config": {"data_name": "json", "data_filez": "x.json"}},
     "load_dataset_config.params: unknown key 'data_filez' (did you mean 'data_files'?)"),
    ({"type": "RawDataContainer"},
     "type: RawDataContainer (Olive 0.6+, raw binary tensors) is not read by olivepress; write a load_dataset "
     "function in a user_script that returns the rows instead"),
    ({"type": "TransformersTokenDummyDataContainer", "load_dataset_config": {"seq_len": 8, "max_seq_len": 12}},
     "seq_len + past_seq_len (16) exceeds max_seq_len 12"),
])
def test_data_config_mistakes_are_named(config, problem):
    with pytest.raises(ValueError) as error:
        DataConfig.model_validate({"name": "d", **config})
    assert problem in str(error.value)


def test_olive_pre_process_spellings_are_read():
    config = DataConfig.model_validate({
        "name": "d", "load_dataset_config": {"data_name": "json", "data_files": "x.json"},
        "pre_process_data_config": {"input_cols": ["a", "b"], "max_length": 64, "strategy": "line-by-line",
                                    "task": "text-classification"},
    })
    params = config.pre_process_data_config.params
    assert (params.text_cols, params.max_seq_len, params.corpus_strategy) == (["a", "b"], 64, "line-by-line")
    assert params.model_extra == {"task": "text-classification"}  # accepted, warned about when the data is read


def test_olive_classification_pre_process_keys_are_read():
    config = DataConfig.model_validate({
        "name": "d", "load_dataset_config": {"data_name": "json", "data_files": "x.json", "streaming": True},
        "pre_process_data_config": {"input_cols": ["a"], "label_cols": ["score"], "padding": "max_length",
                                    "align_labels": True, "labels_to_filter": ["_silence_"]},
    })
    params = config.pre_process_data_config.params
    assert (params.label_col, params.padding, params.align_labels, params.labels_to_filter) == (
        ["score"], "max_length", True, ["_silence_"])
    assert config.load_dataset_config.params.streaming is True


@pytest.mark.parametrize("key, made", [("use_step", "a 'step' input"),
                                       ("shared_kv", "past key/values in one buffer of max_seq_len")])
def test_olives_graph_specific_dummy_rows_are_refused_saying_what_to_do(key, made):
    with pytest.raises(ValidationError) as error:
        DataConfig.model_validate({"name": "d", "type": "TransformersPromptDummyDataContainer",
                                   "load_dataset_config": {key: True, "ort_past_key_name": "past_key_<id>"}})
    (problem,) = error.value.errors()
    assert problem["loc"] == (key,)
    assert problem["msg"] == (f"Value error, Olive 0.9's dummy rows with {made} are not made by olivepress (they fit "
                              "graphs Olive's own passes built); remove it, or give a dataloader function of "
                              "user_script that yields the graph's inputs")


@pytest.mark.parametrize("container, shapes", [
    ("TransformersTokenDummyDataContainer", {"input_ids": (1, 1), "attention_mask": (1, 9), "position_ids": (1, 1)}),
    ("TransformersPromptDummyDataContainer", {"input_ids": (1, 8), "attention_mask": (1, 8), "position_ids": (1, 8)}),
])
def test_dummy_containers_make_olives_token_rows(container, shapes):
    from olivepress.evaluation.forward import dummy_rows

    rows = dummy_rows(DataConfig.model_validate({"name": "d", "type": container}))
    assert len(rows) == 32
    assert {name: rows[0][name].shape for name in shapes} == shapes
    past = 8 if "Token" in container else 0
    assert rows[0]["position_ids"][0, 0] == past
