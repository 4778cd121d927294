"""The seed lab's first two steps from the command line: quantize with AWQ, then train LoRA on the int4 base."""

import json

import pytest
import torch
from peft import PeftModel

from olivepress.models.loading import load_causal_lm
from olivepress.quantization.qlinear import QuantLinear

pytestmark = pytest.mark.slow

SENTENCE = "What's a must-see in Paris? The Eiffel Tower and the Louvre."


def test_lora_trains_on_an_awq_checkpoint(cli, tiny_llama, tmp_path):
    data = tmp_path / "repeat.jsonl"
    data.write_text("".join(json.dumps({"text": SENTENCE}) + "\n" for _ in range(64)))
    code, out, err = cli("quantize", "-m", tiny_llama, "--algorithm", "awq", "--group_size", "32",
                         "--data_files", data, "--max_seq_len", "32", "--num_samples", "8", "--seq_len", "32",
                         "-o", tmp_path / "awq", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    quantized = tmp_path / "awq" / "model"
    assert json.loads((quantized / "config.json").read_text())["quantization_config"]["quant_method"] == "awq"

    code, out, err = cli("finetune", "-m", tmp_path / "awq", "--data_files", data, "--max_seq_len", "32",
                         "--target_modules", "q_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "--lora_r", "8",
                         "--lora_dropout", "0", "--max_steps", "40", "--learning_rate", "0.02",
                         "--lr_scheduler_type", "constant", "--batch_size", "4", "--bf16", "false",
                         "-o", tmp_path / "ft", "--cache_dir", tmp_path / "cache")
    assert code == 0, err
    assert "train_loss" in out

    base = load_causal_lm(tmp_path / "ft" / "model")
    assert isinstance(base.model.layers[0].self_attn.q_proj, QuantLinear)
    tokenizer_ids = __import__("transformers").AutoTokenizer.from_pretrained(quantized)(SENTENCE, return_tensors="pt")
    rows = tokenizer_ids["input_ids"]
    with torch.no_grad():
        base_loss = base(input_ids=rows, labels=rows).loss.item()
        tuned = PeftModel.from_pretrained(base, tmp_path / "ft" / "adapter").eval()
        tuned_loss = tuned(input_ids=rows, labels=rows).loss.item()
    assert tuned_loss < 0.7 * base_loss, (base_loss, tuned_loss)
