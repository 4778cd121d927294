#!/usr/bin/env bash
# The side-by-side reference for benchmarks/finetune.py: Olive 0.13's `olive finetune` with the same
# settings (SmolLM2-135M-Instruct, travel data, r=8 on q_proj,v_proj, batch 8 x 128 tokens, 20 steps).
# Olive lives in its own venv:
#   python -m venv /tmp/olive-venv && /tmp/olive-venv/bin/pip install torch==2.13.0 &&
#   /tmp/olive-venv/bin/pip install olive-ai==0.13.0 requests onnxruntime-genai==0.14.1
# Usage: benchmarks/olive_finetune.sh OUT [OLIVE_VENV]; prints the wall time and Olive's training log, and
# leaves Olive's adapter in OUT/ft/adapter for benchmarks/adapter_loss.py.
set -euo pipefail
out=$1
venv=${2:-/tmp/olive-venv}
here=$(cd "$(dirname "$0")/.." && pwd)
model=${OLIVEPRESS_HOME:-$HOME/.cache/olivepress}/models/smollm2-135m-instruct
mkdir -p "$out" && cd "$out"  # Olive writes its .olive-cache into the working directory
start=$(date +%s.%N)
"$venv/bin/olive" finetune -m "$model" --method lora --lora_r 8 --lora_alpha 16 --target_modules q_proj,v_proj \
  -d json --data_files "$here/olivepress/data/seed/data_sample_travel.jsonl" \
  --text_template $'<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>' \
  --max_seq_len 128 --batch_size 8 --max_steps 20 --logging_steps 1 -o "$out/ft" --log_level 1 --disable_telemetry 2>&1 \
  | tr '\r' '\n' | { grep -E "'loss'|train_runtime" || true; }
end=$(date +%s.%N)
echo "olive finetune wall: $(echo "$end - $start" | bc) s"
