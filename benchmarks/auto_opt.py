"""auto-opt on SmolLM2-135M-Instruct with a LoRA adapter: wall time, peak memory, output size, and
decode speed with and without the adapter.

    python benchmarks/auto_opt.py [--model DIR] [--adapter DIR | --rank R] [--tokens 128]

Without `--adapter`, a LoRA of `--rank` (default 64) on q_proj/v_proj (olivepress's and Olive's default targets) with
random weights is made: export time, size and decode speed do not depend on the values. Prints a
JSON record; docs/benchmarks.md holds the results (Olive 0.13's `olive auto-opt` with an adapter
fails on this stack; its figures there are the ones recorded in the issue).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "What's a must-see in Paris?"


def make_adapter(base: Path, folder: Path, rank: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=rank, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02)
    model.save_pretrained(folder)
    return folder


# Runs a command and prints the peak RSS (KB) of its largest process (the builder runs in a child).
PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds, and the peak RSS in MB of the largest process the command started."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], check=True, stdout=subprocess.PIPE, text=True,
                            cwd=cwd)
    return time.perf_counter() - started, int(result.stdout.split()[-1]) / 1024


def folder_mb(folder: Path) -> float:
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file()) / 1e6


def decode_rate(model_dir: Path, adapter: str | None, tokens: int, repeats: int = 3) -> dict[str, float]:
    """Greedy decode tokens/s after the prompt (best of `repeats`), and the time to the first token."""
    from olivepress.runtime.generate import GenAIModel, GenerationOptions

    model = GenAIModel(model_dir, {"travel": model_dir / "adapter_weights.onnx_adapter"})
    prompt_len = len(model.prompt_ids(PROMPT, use_chat_template=True))
    options = GenerationOptions(max_length=prompt_len + tokens)
    best = {"tokens_per_s": 0.0, "first_token_s": float("inf")}
    for _ in range(repeats):
        started = time.perf_counter()
        stream = model.tokens(PROMPT, options, adapter)
        next(stream)
        first = time.perf_counter()
        count = sum(1 for _ in stream)
        done = time.perf_counter()
        best["tokens_per_s"] = max(best["tokens_per_s"], count / (done - first))
        best["first_token_s"] = min(best["first_token_s"], first - started)
    return {key: round(value, 3) for key, value in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None,
                        help="the base to export (default SmolLM2-135M-Instruct), e.g. an `olivepress quantize` output")
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--rank", type=int, default=64, help="rank of the made adapter (Olive's finetune default: 64)")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    from olivepress.models.default_model import fetch_model

    base = args.model or fetch_model("smollm2-135m-instruct")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        adapter = args.adapter or make_adapter(fetch_model("smollm2-135m-instruct"), work / "adapter", args.rank)
        out = work / "onnx-ao"
        seconds, peak_mb = timed([
            sys.executable, "-m", "olivepress", "auto-opt", "--model_name_or_path", str(base), "--adapter_path",
            str(adapter), "--device", "cpu", "--provider", "CPUExecutionProvider", "--use_ort_genai",
            "--output_path", str(out), "--cache_dir", str(work / "cache"),
        ], cwd=work)
        model_dir = out / "model"
        record = {
            "wall_s": round(seconds, 1), "peak_rss_mb": round(peak_mb), "folder_mb": round(folder_mb(model_dir), 1),
            "adapter_file_mb": round((model_dir / "adapter_weights.onnx_adapter").stat().st_size / 1e6, 2),
            "decode_base": decode_rate(model_dir, None, args.tokens),
            "decode_adapter": decode_rate(model_dir, "travel", args.tokens),
        }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
