"""LoRA, QLoRA, DoRA and MergeAdapterWeights on tiny random models, with real training on CPU."""

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from olivepress.config.sections import DataConfig
from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel
from olivepress.passes.base import PassContext
from olivepress.passes.pytorch.lora import (
    DoRA,
    LoRA,
    LoRAConfig,
    QLoRA,
    default_target_modules,
    linear_module_names,
)
from olivepress.passes.pytorch.merge_adapter import MergeAdapterWeights

pytestmark = pytest.mark.slow

SENTENCE = "What's a must-see in Paris? The Eiffel Tower and the Louvre."
LORA_MODULE = "olivepress.passes.pytorch.lora"


def repeated_sentence_data(folder: Path, name: str = "repeat", copies: int = 64, max_seq_len: int = 32) -> DataConfig:
    source = folder / f"{name}.jsonl"
    source.write_text("".join(json.dumps({"text": SENTENCE}) + "\n" for _ in range(copies)))
    return DataConfig(name=name, load_dataset_config={"params": {"data_name": "json", "data_files": str(source)}},
                      pre_process_data_config={"params": {"max_seq_len": max_seq_len}})


def make_context(folder: Path, *data: DataConfig) -> PassContext:
    (folder / "out").mkdir(parents=True)
    (folder / "scratch").mkdir()
    return PassContext(output_dir=folder / "out", scratch_dir=folder / "scratch",
                       accelerator=Accelerator("cpu", "CPUExecutionProvider"), logger=logging.getLogger("test"),
                       data_configs={d.name: d for d in data})


def lora_config(cls=LoRA, **values) -> LoRAConfig:
    values.setdefault("train_data_config", "repeat")
    return cls.Config.model_validate(values)


def load_base(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def packed_rows(model_dir: Path, max_seq_len: int = 32) -> torch.Tensor:
    tokenizer_ids = __import__("transformers").AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer_ids(SENTENCE)["input_ids"] + [tokenizer_ids.eos_token_id]
    stream = ids * 8
    return torch.tensor([stream[i:i + max_seq_len] for i in range(0, len(stream) - max_seq_len + 1, max_seq_len)])


def mean_loss(model, rows: torch.Tensor) -> float:
    with torch.no_grad():
        return model(input_ids=rows, labels=rows).loss.item()


@pytest.fixture(scope="module")
def trained(tiny_llama, tmp_path_factory):
    """A LoRA adapter trained on one repeated sentence: (in-memory PeftModel, saved adapter folder, metrics)."""
    folder = tmp_path_factory.mktemp("lora")
    context = make_context(folder, repeated_sentence_data(folder))
    config = lora_config(r=8, alpha=16, lora_dropout=0.0, eval_dataset_size=8, target_modules=["q_proj", "v_proj", "lm_head"],
                         training_args={"max_steps": 40, "per_device_train_batch_size": 4, "learning_rate": 2e-2,
                                        "lr_scheduler_type": "constant"})
    output = LoRA().run(HfModel(path=tiny_llama), config, context)
    peft_model = LoRA().train(HfModel(path=tiny_llama), config, make_context(folder / "again", *context.data_configs.values()))
    return peft_model, output, context.metrics


def test_loss_decreases_on_repeated_data(trained, tiny_llama):
    peft_model, _, metrics = trained
    rows = packed_rows(tiny_llama)
    before, after = mean_loss(load_base(tiny_llama), rows), mean_loss(peft_model, rows)
    assert after < 0.5 * before, (before, after)
    assert metrics["train_steps"] == 40
    assert metrics["eval_loss"] < 0.5 * before
    assert metrics["train_loss"] < before and metrics["train_tokens_per_s"] > 0


def test_without_a_terminal_training_says_its_cost_estimate_and_progress(tiny_llama, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("olivepress.progress.REPORT_EVERY_S", 0.0)  # a line at every step
    context = make_context(tmp_path, repeated_sentence_data(tmp_path))
    config = lora_config(r=4, training_args={"max_steps": 3, "per_device_train_batch_size": 2})
    LoRA().train(HfModel(path=tiny_llama), config, context)
    lines = capsys.readouterr().err.splitlines()
    assert "LoRA: 3 steps x 2 rows x 32 tokens = 192 tokens" in lines
    assert any(re.fullmatch(r"LoRA: about \d+s in all at this pace", line) for line in lines), lines
    assert re.fullmatch(r"LoRA: step 3/3, [\d.]+ (step/s|s/step), tokens/s \d+, loss \d\.\d{4}, elapsed \d+s", lines[-1])


def test_the_pass_trains_with_the_chunked_loss_that_equals_the_models_own(tiny_llama):
    from peft import LoraConfig, get_peft_model

    from olivepress.passes.pytorch.training import chunked_loss_trainer, training_arguments

    model = get_peft_model(load_base(tiny_llama), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    trainer = chunked_loss_trainer(model=model, args=training_arguments({}, Path("unused"), use_cpu=True))
    rows = packed_rows(tiny_llama)
    inputs = {"input_ids": rows, "labels": rows, "attention_mask": torch.ones_like(rows)}
    with torch.no_grad():
        torch.testing.assert_close(trainer.compute_loss(model, inputs), model(**inputs).loss)


def test_adapter_reloads_with_peft_and_gives_the_same_logits(trained, tiny_llama):
    from peft import PeftModel

    peft_model, output, _ = trained
    assert output.path == tiny_llama and output.adapter_path.name == "adapter"
    adapter_config = json.loads((output.adapter_path / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and set(adapter_config["target_modules"]) == {"q_proj", "v_proj", "lm_head"}
    assert (output.adapter_path / "adapter_model.safetensors").is_file()

    rows = packed_rows(tiny_llama)
    reloaded = PeftModel.from_pretrained(load_base(tiny_llama), output.adapter_path).eval()
    with torch.no_grad():
        # the in-memory model trained in a second run with the same seed: same data order, same adapter
        expected = peft_model(input_ids=rows).logits
        torch.testing.assert_close(reloaded(input_ids=rows).logits, expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(load_base(tiny_llama)(input_ids=rows).logits, expected, atol=1e-2)


def test_merged_model_matches_base_plus_adapter(trained, tiny_llama, tmp_path):
    from peft import PeftModel

    _, output, _ = trained
    context = make_context(tmp_path)
    merged = MergeAdapterWeights().run(output, MergeAdapterWeights.Config(), context)
    assert merged.path == context.output_dir and merged.adapter_path is None
    files = {p.name for p in merged.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
            "chat_template.jinja"} <= files
    rows = packed_rows(tiny_llama)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(load_base(tiny_llama), output.adapter_path).eval()(input_ids=rows).logits
        torch.testing.assert_close(load_base(merged.path)(input_ids=rows).logits, unmerged, atol=1e-5, rtol=1e-5)


def test_merge_needs_an_adapter(tiny_llama, tmp_path):
    with pytest.raises(OlivepressError, match="no adapter_path to merge"):
        MergeAdapterWeights().run(HfModel(path=tiny_llama), MergeAdapterWeights.Config(), make_context(tmp_path))


def test_qlora_trains_on_cpu_and_writes_a_float_base_adapter(tiny_llama, tmp_path):
    from peft import PeftModel

    context = make_context(tmp_path, repeated_sentence_data(tmp_path))
    config = lora_config(QLoRA, r=4, quant_type="nf4", double_quant=True,
                         training_args={"max_steps": 3, "per_device_train_batch_size": 2})
    output = QLoRA().run(HfModel(path=tiny_llama), config, context)
    assert context.metrics["train_steps"] == 3
    adapter_config = json.loads((output.adapter_path / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"q_proj", "v_proj"} and not adapter_config["use_dora"]
    PeftModel.from_pretrained(load_base(tiny_llama), output.adapter_path)  # keys fit the float model


def quantized_copy(model: Path, folder: Path) -> Path:
    """The model's folder with a quantization_config, as the quantizers write it."""
    quantized = folder / "quantized"
    shutil.copytree(model, quantized)
    config = json.loads((quantized / "config.json").read_text())
    (quantized / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "awq"}}))
    return quantized


def test_merge_refuses_a_quantized_base(trained, tiny_llama, tmp_path):
    _, output, _ = trained
    quantized = quantized_copy(tiny_llama, tmp_path)
    with pytest.raises(OlivepressError, match=r"cannot merge an adapter into a quantized base \(awq"):
        MergeAdapterWeights().run(HfModel(path=quantized, adapter_path=output.adapter_path), MergeAdapterWeights.Config(),
                                  make_context(tmp_path / "run"))


def test_qlora_refuses_a_quantized_base(tiny_llama, tmp_path):
    quantized = quantized_copy(tiny_llama, tmp_path)
    context = make_context(tmp_path / "run", repeated_sentence_data(tmp_path))
    with pytest.raises(OlivepressError, match=r"already quantized \(awq\); use LoRA on it instead"):
        QLoRA().run(HfModel(path=quantized), lora_config(QLoRA), context)
    assert not any(context.output_dir.iterdir())


def test_dora_adapter(tiny_llama, tmp_path):
    context = make_context(tmp_path, repeated_sentence_data(tmp_path))
    output = DoRA().run(HfModel(path=tiny_llama), lora_config(DoRA, r=4, training_args={"max_steps": 2}), context)
    adapter_config = json.loads((output.adapter_path / "adapter_config.json").read_text())
    assert adapter_config["use_dora"] is True


def test_unknown_target_module_lists_the_candidates(tiny_llama, tmp_path):
    context = make_context(tmp_path, repeated_sentence_data(tmp_path))
    with pytest.raises(OlivepressError) as error:
        LoRA().run(HfModel(path=tiny_llama), lora_config(target_modules=["q_proj", "qkv_proj"]), context)
    assert str(error.value) == ("target_modules: the model has no Linear module 'qkv_proj'; its Linear modules are "
                                "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj")


def test_default_targets_by_architecture(tiny_phi3):
    assert default_target_modules("llama") == ["q_proj", "v_proj"]
    assert default_target_modules("phi3") == ["qkv_proj"]
    assert default_target_modules("some_new_arch") == "all-linear"
    assert any(name.endswith(".qkv_proj") for name in linear_module_names(load_base(tiny_phi3)))


def test_an_input_with_an_adapter_must_be_merged_first(trained, tmp_path):
    _, output, _ = trained
    with pytest.raises(OlivepressError, match="merge it first with MergeAdapterWeights"):
        LoRA().run(output, lora_config(), make_context(tmp_path))


def test_training_args_are_checked_by_their_current_names():
    with pytest.raises(ValidationError, match=r"unknown TrainingArguments key 'lerning_rate' \(did you mean 'learning_rate'\?\)"):
        lora_config(training_args={"lerning_rate": 1e-3})
    # older names are the document migration's (tests/test_migration.py); the config reads current ones only
    with pytest.raises(ValidationError, match=r"key 'evaluation_strategy' \(did you mean 'eval_strategy'\?\)"):
        lora_config(training_args={"evaluation_strategy": "steps"})
    with pytest.raises(ValidationError, match="unknown key 'lora_r'"):
        lora_config(lora_r=4)
    config = lora_config(r=4, alpha=8, lora_dropout=0.1, training_args={"eval_strategy": "steps", "eval_steps": 2})
    assert (config.r, config.alpha, config.lora_dropout) == (4, 8, 0.1)
    assert config.training_args == {"eval_strategy": "steps", "eval_steps": 2}
    with pytest.raises(ValidationError, match="a fraction must be between 0 and 1"):
        lora_config(eval_dataset_size=1.5)


def test_lora_workflow_end_to_end(tiny_llama, tmp_path, write_doc, cli):
    source = tmp_path / "travel.jsonl"
    shutil.copy(Path(__file__).parents[1] / "olivepress" / "data" / "seed" / "data_sample_travel.jsonl", source)
    document = {
        "input_model": {"type": "HfModel", "model_path": str(tiny_llama)},
        "data_configs": [{
            "name": "travel",
            "load_dataset_config": {"params": {"data_name": "json", "data_files": str(source)}},
            "pre_process_data_config": {"params": {"text_template": "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>",
                                                   "max_seq_len": 64, "max_samples": 40}},
        }],
        "passes": {"lora": {"type": f"{LORA_MODULE}:LoRA", "r": 4, "train_data_config": "travel",
                            "eval_dataset_size": 0.25,
                            "training_args": {"max_steps": 4, "eval_strategy": "steps", "eval_steps": 2}}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    first, last = out.splitlines()
    assert re.fullmatch(r"pass lora \(LoRA\): ran in [\d.]+ s  train_loss [\d.]+  train_steps 4  "
                        r"train_tokens_per_s [\d.]+  eval_loss [\d.]+  \[[0-9a-f]{12}\]", first), first
    assert last == f"output: {tmp_path / 'out'}/  (model/, adapter/, model_config.json, footprint.json)"
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    assert footprint["passes"][0]["metrics"]["train_steps"] == 4
