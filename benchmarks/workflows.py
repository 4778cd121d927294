"""The example workflows on SmolLM2-135M-Instruct, as written: wall time of each, cold (empty cache).

    python benchmarks/workflows.py [NAME ...]

NAME is a document under workflows/ (e.g. tone-classification.json) or `olive-lab/lab.sh`; default all.
Each runs in a fresh temporary folder with its own cache. Prints a JSON record; docs/benchmarks.md
holds the results.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = ["quickstart.json", "olive-lab/workflow.json", "olive-lab/lab.sh", "tone-classification.json",
        "tone-classification-qlora.json"]


def run(name: str, work: Path) -> float:
    if name.endswith(".sh"):
        command = [str(REPO / "workflows" / name)]
    else:
        document = json.loads((REPO / "workflows" / name).read_text())
        document["engine"].update(cache_dir=str(work / "cache"), output_dir=str(work / "out"))
        path = work / "workflow.json"
        path.write_text(json.dumps(document))
        command = [sys.executable, "-m", "olivepress", "run", "--config", str(path)]
    started = time.perf_counter()
    # Documents name their data relative to the repository; the lab script writes models/ into its cwd.
    subprocess.run(command, cwd=work if name.endswith(".sh") else REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> None:
    names = sys.argv[1:] or RUNS
    record = {}
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            record[name] = round(run(name, Path(scratch)), 1)
            print(f"{name}: {record[name]} s", file=sys.stderr)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
