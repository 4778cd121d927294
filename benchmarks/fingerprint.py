"""Fingerprinting an unchanged 500 MB model folder: first time (hashing) and on a re-run (memoized).

    python benchmarks/fingerprint.py [--size_mb 500]

The re-run is timed in a fresh process, as a second `olivepress run` would see it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import sys, time
from pathlib import Path
started = time.perf_counter()
from olivepress.hashing import FingerprintMemo
memo = FingerprintMemo(Path(sys.argv[1]))
key = memo.fingerprint(Path(sys.argv[2]))
print(time.perf_counter() - started, key)
"""


def measure(memo_file: Path, folder: Path) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(memo_file), str(folder)], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), out[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size_mb", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        folder.mkdir()
        shard_mb = 100
        for index in range(args.size_mb // shard_mb):
            (folder / f"model-{index:05d}.safetensors").write_bytes(os.urandom(shard_mb << 20))
        (folder / "config.json").write_text("{}")
        memo_file = Path(scratch) / "fingerprints.sqlite"
        first_s, key = measure(memo_file, folder)
        reruns = [measure(memo_file, folder) for _ in range(5)]
        assert all(rerun_key == key for _, rerun_key in reruns)
        print(json.dumps({
            "folder_mb": args.size_mb,
            "first_fingerprint_s": round(first_s, 3),
            "rerun_fingerprint_ms_median": round(sorted(s for s, _ in reruns)[2] * 1000, 1),
        }, indent=2))


if __name__ == "__main__":
    main()
