"""Olive's CPU int4 LLM recipe (workflows/olive-recipes/smollm2-cpu-int4-selective-mixed.json) on SmolLM2-135M-Instruct
against the builder's own int4 and olivepress GPTQ + ModelBuilder int4: held-out perplexity, size, time.

    python benchmarks/olive_recipe_int4.py [--work DIR] [--threads 2] [--eval_windows N] [--force NAME ...]
                                           [--num_samples 64 --seq_len 512 --smp_samples 256 --smp_seq_len 512]

Rows (each an `olivepress run` of its own document, with a cache of its own emptied first, so it is timed whole):
  fp32           ModelBuilder fp32 (the reference of the gap)
  builder_int4   ModelBuilder int4 with its defaults (round-to-nearest, block 32)
  gptq           olivepress GPTQ with its defaults (the seed text as calibration), then ModelBuilder int4
  recipe         the recipe as written (SelectiveMixedPrecision kld_gradient, gptq, rtn 8-bit LM head and tied
                 embeddings, ModelBuilder int4, TieWordEmbeddings), with SmolLM2 as its model
Perplexity is benchmarks/quantization.py's (onnxruntime over windows of its EVAL_WINDOW tokens) on the texts in
benchmarks/texts/, which no quantizer calibrates on: the recipe's passes and GPTQ calibrate on olivepress's seed text.
--num_samples/--seq_len set the calibration of both GPTQ passes (gptq row and the recipe's `g`), --smp_samples/
--smp_seq_len the recipe's kld_gradient rows; the defaults are the recipe's own (and GPTQ's).
Results are kept under --work (results/NAME.json); a rerun only does what is missing.
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

from quantization import TEXTS, folder_mb, perplexity  # noqa: E402  (benchmarks/quantization.py)

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "workflows" / "olive-recipes" / "smollm2-cpu-int4-selective-mixed.json"
BUILDER_INT4 = {"type": "ModelBuilder", "precision": "int4"}
ROWS = {
    "fp32": ("builder fp32", {"m": {"type": "ModelBuilder", "precision": "fp32"}}),
    "builder_int4": ("builder int4 (its own RTN, block 32)", {"m": BUILDER_INT4}),
    "gptq": ("olivepress GPTQ -> builder int4", {"g": {"type": "GPTQ"}, "m": BUILDER_INT4}),
    "recipe": ("Olive's CPU int4 recipe", None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/olivepress-bench-olive-recipe"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval_windows", type=int, default=None, help="Evaluate on the first N windows only.")
    parser.add_argument("--force", nargs="*", default=[], help=f"Rows to redo ({', '.join(ROWS)}).")
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--smp_samples", type=int, default=256)
    parser.add_argument("--smp_seq_len", type=int, default=512)
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    from olivepress.models.default_model import resolve_known_model

    model = resolve_known_model("smollm2-135m-instruct", fetch=True)
    (args.work / "results").mkdir(parents=True, exist_ok=True)
    texts = {path.stem: path.read_text(encoding="utf-8") for path in sorted(TEXTS.glob("*.txt"))}
    results = {name: row(args, name, model, texts) for name in ROWS}
    print_table(results, texts, args)


def row(args: argparse.Namespace, name: str, model: Path, texts: dict[str, str]) -> dict:
    saved = args.work / "results" / f"{name}.json"
    settings = {"threads": args.threads, "eval_windows": args.eval_windows, "model": str(model), "texts": sorted(texts),
                **calibration(args, name)}
    if saved.is_file() and name not in args.force:
        result = json.loads(saved.read_text())
        if result.get("settings") == settings:
            return result
    document = workflow(args.work, name, model, calibration(args, name))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "olivepress", "run", "--config", str(document)], check=True)
    result: dict = {"run_s": round(time.perf_counter() - started, 1), "settings": settings}
    engine = json.loads(document.read_text())["engine"]
    footprint = json.loads((Path(engine["output_dir"]) / "footprint.json").read_text())
    result["pass_s"] = {step["type"]: round(step["duration_s"], 1) for step in footprint["passes"]}
    result["hf_mb"] = {step["type"]: folder_mb(Path(engine["cache_dir"]) / "entries" / step["output_key"] / "model")
                       for step in footprint["passes"] if step["type"] in ("GPTQ", "RTN")}
    built = Path(engine["output_dir"]) / "model"
    result["onnx_mb"] = folder_mb(built)
    result["weights"] = weight_layout(built)
    scored = {text: perplexity(built, model, body, args.threads, args.eval_windows) for text, body in texts.items()}
    result["perplexity"] = {text: value for text, (value, _) in scored.items()}
    result["eval_tokens"] = {text: tokens for text, (_, tokens) in scored.items()}
    saved.write_text(json.dumps(result, indent=2))
    return result


def calibration(args: argparse.Namespace, name: str) -> dict[str, dict[str, int]]:
    """The calibration sizes of the row's calibrated passes, by pass name."""
    gptq = {"num_samples": args.num_samples, "seq_len": args.seq_len}
    return {"gptq": {"g": gptq}, "recipe": {"s": {"num_samples": args.smp_samples, "seq_len": args.smp_seq_len},
                                            "g": gptq}}.get(name, {})


def workflow(work: Path, name: str, model: Path, sizes: dict[str, dict[str, int]]) -> Path:
    """The row's document: the recipe as written, or the row's passes, with SmolLM2, a fresh cache and the
    calibration sizes asked for."""
    cache = work / "cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    passes = ROWS[name][1]
    document = json.loads(RECIPE.read_text()) if passes is None else {"passes": json.loads(json.dumps(passes))}
    for pass_name, size in sizes.items():
        document["passes"][pass_name] |= size
    document["input_model"] = {"type": "HfModel", "model_path": str(model), "task": "text-generation"}
    document["engine"] = {**document.get("engine", {}), "cache_dir": str(cache), "output_dir": str(work / "out" / name)}
    path = work / f"{name}.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def weight_layout(built: Path) -> dict:
    """The quantized weights of the graph: parameters per bit width (MatMulNBits K x N), and how the embedding is
    looked up (its op, bits, whether it reads the LM head's data)."""
    import onnx

    graph = onnx.load(str(built / "model.onnx"), load_external_data=False).graph
    per_bits: dict[str, int] = {}
    embedding = "float Gather"
    head_weight = next((node.input[1] for node in graph.node if node.output[0] == "logits"), None)
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        attributes = {attribute.name: attribute.i for attribute in node.attribute}
        if node.op_type == "MatMulNBits":
            key = f"{attributes['bits']}-bit"
            per_bits[key] = per_bits.get(key, 0) + attributes["K"] * attributes["N"]
        if node.op_type == "GatherBlockQuantized":
            source = producers.get(node.input[0])
            tied = source is not None and source.input[0] == head_weight
            embedding = f"GatherBlockQuantized {attributes['bits']}-bit{', tied to the LM head' if tied else ''}"
    total = sum(per_bits.values())
    return {"params": per_bits, "share": {key: round(value / total, 3) for key, value in per_bits.items()},
            "embedding": embedding}


def print_table(results: dict, texts: dict[str, str], args: argparse.Namespace) -> None:
    names = list(texts)
    tokens = ", ".join(f"{text} {results['fp32']['eval_tokens'][text]}" for text in names)
    print(f"\nSmolLM2-135M-Instruct; {args.threads} threads; held-out tokens: {tokens}; each text: perplexity "
          "(share of the builder-int4 -> fp32 gap closed)\n")
    print(f"| model | {' | '.join(names)} | ONNX MB | 8-bit share of MatMulNBits weights | embedding | "
          "HF checkpoint MB | time s (passes) |")
    print("|---|" + "---|" * (len(names) + 5))
    for key, (label, _) in ROWS.items():
        result = results[key]
        cells = [f"{result['perplexity'][text]:.2f}{gap_closed(results, key, text)}" for text in names]
        weights = result["weights"]
        share = f"{weights['share'].get('8-bit', 0):.0%}" if weights["params"] else ""
        checkpoints = ", ".join(f"{kind} {mb}" for kind, mb in result["hf_mb"].items())
        passes = ", ".join(f"{kind} {seconds}" for kind, seconds in result["pass_s"].items())
        print(f"| {label} | {' | '.join(cells)} | {result['onnx_mb']} | {share} | {weights['embedding']} | "
              f"{checkpoints} | {result['run_s']} ({passes}) |")


def gap_closed(results: dict, key: str, text: str) -> str:
    fp32, plain = results["fp32"]["perplexity"][text], results["builder_int4"]["perplexity"][text]
    if key in ("fp32", "builder_int4") or plain <= fp32:
        return ""
    return f" ({(plain - results[key]['perplexity'][text]) / (plain - fp32):.0%})"


if __name__ == "__main__":
    main()
