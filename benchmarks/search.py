"""The example search (workflows/search-builder.json): ModelBuilder int4 over block_size {32, 64, 128} x
algo_config {default, rtn, k_quant_last} on SmolLM2-135M-Instruct, scored by perplexity on the held-out
fifth of the travel data and by size. Runs it twice on a fresh cache: the second run must be served from the
cache (every pass and every metric of the candidates that succeeded; a failed candidate is not cached, so
it runs again).

    python benchmarks/search.py [--num_workers N] [--sampler sequential|random|tpe] [--max_samples N]

Prints the runs' output on stderr and a JSON record (wall times, every candidate) on stdout; docs/benchmarks.md holds the results.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(document: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "olivepress", "run", "--config", str(document)], check=True, cwd=ROOT,
                   stdout=sys.stderr)  # the CLI's summary goes to stderr; stdout is the JSON record
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--sampler", default="sequential")
    parser.add_argument("--max_samples", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        document = json.loads((ROOT / "workflows" / "search-builder.json").read_text())
        document["engine"].update(cache_dir=f"{tmp}/cache", output_dir=f"{tmp}/out")
        document["engine"]["search_strategy"].update(num_workers=args.num_workers, sampler=args.sampler,
                                                     max_samples=args.max_samples)
        path = Path(tmp) / "search.json"
        path.write_text(json.dumps(document))
        cold = run(path)
        warm = run(path)
        search = json.loads((Path(tmp) / "out" / "footprint.json").read_text())["search"]
    succeeded = [c for c in search["candidates"] if c["status"] == "succeeded"]
    served = all(c["evaluation"] == "cached" and all(p["cache"] == "hit" for p in c["passes"]) for c in succeeded)
    print(json.dumps({
        "cold_s": round(cold, 1), "warm_s": round(warm, 1),
        "second_run_served_from_cache": served,  # failures are not cached: they run again
        "failed": {c["number"]: c["error"] for c in search["candidates"] if c["status"] == "failed"},
        "input_model": search["input_model_metrics"], "best": search["best"],
        "candidates": [{"number": c["number"], **c["choice"]["builder"], **c["metrics"], "pareto": c["pareto"],
                        "goals_met": c["goals_met"]} for c in search["candidates"]],
    }, indent=2))


if __name__ == "__main__":
    main()
