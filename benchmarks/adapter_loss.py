"""The same yardstick for adapters trained by different tools: mean next-token loss of base + adapter over the
travel seed data, tokenized one way (the travel template, packed into rows of 128 tokens).

    .venv/bin/python benchmarks/adapter_loss.py ADAPTER [ADAPTER ...]

Used to compare `olivepress finetune` with `olive finetune` (benchmarks/finetune_vs_olive.py) at equal settings,
since their own training losses are computed over differently joined text.
"""

import argparse
import json
from pathlib import Path

import torch
from peft import PeftModel

from olivepress.config.sections import DataConfig
from olivepress.data.container import HuggingfaceContainer, seed_data_file
from olivepress.models.default_model import resolve_known_model
from olivepress.models.loading import load_causal_lm, load_tokenizer

TRAVEL_TEMPLATE = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"


def mean_loss(model, rows: torch.Tensor, batch_size: int = 16) -> float:
    losses = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            losses.append(model(input_ids=batch, labels=batch).loss.item() * len(batch))
    return sum(losses) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("adapters", nargs="+", type=Path)
    args = parser.parse_args()
    base_path = resolve_known_model("smollm2-135m-instruct", fetch=True)
    data = DataConfig(
        name="travel",
        load_dataset_config={"params": {"data_name": "json", "data_files": str(seed_data_file("data_sample_travel.jsonl"))}},
        pre_process_data_config={"params": {"text_template": TRAVEL_TEMPLATE, "max_seq_len": 128}},
    )
    rows = HuggingfaceContainer(data).calibration_rows(load_tokenizer(base_path), 10_000, 128)
    results = {"rows": len(rows), "base": round(mean_loss(load_causal_lm(base_path).eval(), rows), 4)}
    for adapter in args.adapters:
        model = PeftModel.from_pretrained(load_causal_lm(base_path), adapter).eval()
        results[str(adapter)] = round(mean_loss(model, rows), 4)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
