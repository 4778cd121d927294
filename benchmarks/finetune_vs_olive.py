"""`olivepress finetune` against Olive 0.13's `olive finetune`, side by side: the same settings, alternating which
tool goes first each round, then every adapter measured on the same yardstick rows (benchmarks/adapter_loss.py).

    .venv/bin/python benchmarks/finetune_vs_olive.py [--rounds 3] [--steps 20] [--seq_len 128] [--batch_size 8]
        [--olive_venv /work/olive-venv] [--out /tmp/finetune-vs-olive]

Settings: SmolLM2-135M-Instruct, the travel seed data and template, LoRA r=8 alpha 16 on q_proj,v_proj,
learning rate 2e-4 constant, each tool otherwise at its defaults. Olive's own dtype default is bfloat16; on a CPU
without native bf16 arithmetic (no AVX512-BF16/AMX) a bf16 matmul is emulated and some 40x slower, so there both
tools train in float32 (`--olive_torch_dtype` overrides). Prints, per tool, the median and the range over the rounds
of the training time (each tool's own train_runtime), the wall time of the command and its peak RSS, and the
yardstick loss of the first round's adapters (training is seeded: every round trains the same adapter).

Olive lives in its own venv, CPU torch first so that nothing pulls CUDA wheels:
    python3 -m venv /work/olive-venv && /work/olive-venv/bin/pip install torch==2.13.0 &&
    /work/olive-venv/bin/pip install olive-ai==0.13.0 onnxruntime-genai==0.14.1 requests \\
        -c <(grep -v ^onnxruntime constraints.txt)
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from olivepress.models.default_model import resolve_known_model

HERE = Path(__file__).resolve().parent
TEMPLATE = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"
DATA = HERE.parent / "olivepress" / "data" / "seed" / "data_sample_travel.jsonl"


def native_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def common_flags(model: Path, args: argparse.Namespace) -> list[str]:
    return ["-m", str(model), "--method", "lora", "--lora_r", "8", "--lora_alpha", "16",
            "--target_modules", "q_proj,v_proj", "--data_name", "json", "--data_files", str(DATA),
            "--text_template", TEMPLATE, "--max_seq_len", str(args.seq_len), "--batch_size", str(args.batch_size),
            "--max_steps", str(args.steps), "--log_level", "1"]


def olivepress_command(model: Path, args: argparse.Namespace, out: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "olivepress"), "finetune", *common_flags(model, args), "-o", str(out)]


def olive_command(model: Path, args: argparse.Namespace, out: Path) -> list[str]:
    return [str(args.olive_venv / "bin" / "olive"), "finetune", *common_flags(model, args), "-o", str(out),
            "--torch_dtype", args.olive_torch_dtype, "--logging_steps", "1", "--disable_telemetry"]


def timed(command: list[str], cwd: Path) -> tuple[str, float, float]:
    """(output, wall seconds, peak RSS in GB) of the command, measured by GNU time."""
    cwd.mkdir(parents=True, exist_ok=True)
    usage = cwd / "time.txt"
    started = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(usage), *command], cwd=cwd, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, errors="replace")
    wall = time.perf_counter() - started
    (cwd / "log.txt").write_text(run.stdout)
    if run.returncode:
        sys.exit(f"{command[0]} failed (exit {run.returncode}); its output is in {cwd / 'log.txt'}")
    return run.stdout, wall, int(usage.read_text().split()[-1]) / 2**20


def train_seconds(output: str) -> float:
    """The training time each tool reports: Trainer's train_runtime (Olive) or the pass's 'N steps in X s'."""
    found = re.findall(r"'train_runtime': '?([\d.]+)", output) or re.findall(r"steps in ([\d.]+) s", output)
    if not found:
        sys.exit("no training time in the output")
    return float(found[-1])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--olive_venv", type=Path, default=Path("/work/olive-venv"))
    parser.add_argument("--olive_torch_dtype", choices=["bfloat16", "float32"], default=None,
                        help="default: bfloat16 (Olive's) on a CPU with native bf16, else float32")
    parser.add_argument("--out", type=Path, default=Path("/tmp/finetune-vs-olive"))
    args = parser.parse_args()
    args.olive_torch_dtype = args.olive_torch_dtype or ("bfloat16" if native_bf16() else "float32")
    model = resolve_known_model("smollm2-135m-instruct", fetch=True)
    shutil.rmtree(args.out, ignore_errors=True)
    tools = {"olivepress": olivepress_command, "olive": olive_command}
    measured: dict[str, dict[str, list[float]]] = {tool: {"train_s": [], "wall_s": [], "peak_rss_gb": []} for tool in tools}
    for number in range(args.rounds):
        order = list(tools) if number % 2 else list(reversed(tools))
        for tool in order:
            out = args.out / f"{tool}-{number}"
            output, wall, rss = timed(tools[tool](model, args, out / "result"), out)
            for name, value in (("train_s", train_seconds(output)), ("wall_s", wall), ("peak_rss_gb", rss)):
                measured[tool][name].append(value)
            print(f"round {number + 1} {tool}: train {measured[tool]['train_s'][-1]:.1f} s, wall {wall:.1f} s, "
                  f"peak RSS {rss:.2f} GB", flush=True)
    adapters = [args.out / "olivepress-0" / "result" / "adapter", args.out / "olive-0" / "result" / "adapter"]
    yardstick = subprocess.run([sys.executable, str(HERE / "adapter_loss.py"), *map(str, adapters)],
                               check=True, capture_output=True, text=True).stdout
    losses = json.loads(yardstick[yardstick.index("{"):])
    report = {
        "settings": {"rounds": args.rounds, "steps": args.steps, "batch": f"{args.batch_size} x {args.seq_len}",
                     "olive_torch_dtype": args.olive_torch_dtype},
        **{tool: {name: summary(values) for name, values in numbers.items()} for tool, numbers in measured.items()},
        "olive_over_olivepress_train_time": round(statistics.median(measured["olive"]["train_s"])
                                                  / statistics.median(measured["olivepress"]["train_s"]), 2),
        "yardstick_loss": {"rows": losses["rows"], "base": losses["base"], "olivepress": losses[str(adapters[0])],
                           "olive": losses[str(adapters[1])]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
