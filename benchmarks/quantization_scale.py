"""Time and peak memory of olivepress AWQ / GPTQ on a randomly initialised model of a real, larger shape.

    python benchmarks/quantization_scale.py --shape llama-1b [--algorithms awq gptq] [--threads 2] [--layers N]

The model is written once under --work in bfloat16 safetensors shards (as checkpoints of that size ship), with
random weights: time and memory depend on the shape, not on the values. Each quantization then runs as
`olivepress run` in a child process with an empty cache, calibrating on the default seed text (num_samples x
seq_len tokens), and reports the pass's wall time and the child's peak RSS (VmHWM). The quantizers read one
decoder layer's weights at a time from the shards, so memory grows with the quantized layers only.
With --layers N the model keeps only its first N decoder layers (same widths and vocabulary): the table then
also gives the time per layer and the full model's time extrapolated from it. Quality is not measured here
(random weights); see benchmarks/quantization.py for that.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantization import document, folder_mb  # noqa: E402  (the sibling benchmark's helpers)

# transformers config fields of real shapes; "tiny" checks that the script works in seconds
SHAPES = {
    "tiny": {"model_type": "llama", "hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 2,
             "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 49152},
    # Llama 3.2 1B: 1.24B parameters
    "llama-1b": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                 "tie_word_embeddings": True},
    # Qwen2.5 1.5B: 1.54B parameters
    "qwen-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                  "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                  "tie_word_embeddings": True},
    # Phi-3-mini: 3.82B parameters
    "phi3-mini": {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
                  "max_position_embeddings": 4096, "original_max_position_embeddings": 4096},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-1b")
    parser.add_argument("--algorithms", nargs="+", choices=("awq", "gptq"), default=["awq", "gptq"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/olivepress-bench-quantization-scale"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--layers", type=int, default=None, help="Keep only the first N decoder layers.")
    parser.add_argument("--child", nargs=2, metavar=("DOC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from quantization import run_child

        return run_child(Path(args.child[0]), Path(args.child[1]))

    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    shape = dict(SHAPES[args.shape])
    full_layers = shape["num_hidden_layers"]
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    name = f"{args.shape}-{shape['num_hidden_layers']}-layers"
    model, parameters = random_model(args.work / "models" / name, shape)
    print(f"\n{name}: {parameters / 1e9:.2f}B parameters, {folder_mb(model):.0f} MB in bfloat16; {args.threads} "
          f"threads; calibration {args.num_samples} x {args.seq_len} tokens of the seed text\n")
    print("| algorithm | quantize s | s per layer | extrapolated to all layers s | peak RSS GB | HF folder MB |")
    print("|---|---|---|---|---|---|")
    for algorithm in args.algorithms:
        measured = quantize(args, model, name, algorithm)
        per_layer = measured["quantize_s"] / shape["num_hidden_layers"]
        print(f"| {algorithm.upper()} | {measured['quantize_s']:.0f} | {per_layer:.0f} | {per_layer * full_layers:.0f} | "
              f"{measured['peak_rss_mb'] / 1024:.2f} | {measured['hf_mb']:.0f} |", flush=True)


def random_model(folder: Path, shape: dict) -> tuple[Path, int]:
    """The model of this shape, written once (bfloat16, 2 GB shards) with a tokenizer copied from the default model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    marker = folder / "parameters.json"
    if marker.is_file():
        return folder, json.loads(marker.read_text())["parameters"]
    shutil.rmtree(folder, ignore_errors=True)
    fields = dict(shape)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, max_shard_size="2GB")
    del model
    tokenizer_source = default_tokenizer()
    for path in tokenizer_source.glob("tokenizer*"):
        shutil.copy2(path, folder / path.name)
    marker.write_text(json.dumps({"parameters": parameters}))
    return folder, parameters


def default_tokenizer() -> Path:
    """SmolLM2's tokenizer (49,152 tokens): any id it produces is valid for the shapes above."""
    from olivepress.models.default_model import resolve_known_model

    return resolve_known_model("smollm2-135m-instruct", fetch=True)


def quantize(args: argparse.Namespace, model: Path, name: str, algorithm: str) -> dict:
    work = args.work / name
    cache = work / "cache" / algorithm  # emptied: the quantization must run to be measured
    shutil.rmtree(cache, ignore_errors=True)
    passes = {"q": {"type": algorithm.upper(), "num_samples": args.num_samples, "seq_len": args.seq_len}}
    (work / "results").mkdir(parents=True, exist_ok=True)
    doc = document(work, model, f"{algorithm}_hf", passes, cache=cache)
    result = work / "results" / f"{algorithm}.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", str(doc), str(result)], check=True, env=env)
    measured = json.loads(result.read_text())
    measured.update(wall_s=round(time.perf_counter() - started, 1), hf_mb=folder_mb(work / "out" / f"{algorithm}_hf" / "model"))
    result.write_text(json.dumps(measured, indent=2))
    return measured


if __name__ == "__main__":
    main()
