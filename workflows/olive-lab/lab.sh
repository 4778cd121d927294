#!/usr/bin/env bash
# The Phi-3 cookbook's Olive lab, step by step with olivepress, on SmolLM2-135M-Instruct and CPU:
# quantize (AWQ) -> fine-tune a LoRA adapter on the int4 base -> export with the adapter swappable
# (auto-opt) -> answer with the adapter (app.py). Outputs go to models/ under the current directory,
# as in the lab. Settings: MODEL, MAX_STEPS, AWQ_SAMPLES, OLIVEPRESS (the command), PYTHON.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
model=${MODEL:-smollm2-135m-instruct}
olivepress=${OLIVEPRESS:-$repo/.venv/bin/olivepress}
python=${PYTHON:-$repo/.venv/bin/python}
data=$repo/olivepress/data/seed/data_sample_travel.jsonl

"$olivepress" quantize --model_name_or_path "$model" --algorithm awq --group_size 32 \
  --num_samples "${AWQ_SAMPLES:-64}" --output_path models/awq --log_level 1

"$olivepress" finetune --method lora --model_name_or_path models/awq --data_files "$data" --data_name json \
  --text_template "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>" --max_seq_len 128 \
  --lora_r 8 --lora_alpha 16 --target_modules q_proj,v_proj --batch_size 8 \
  --max_steps "${MAX_STEPS:-30}" --output_path models/ft --log_level 1

"$olivepress" auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter \
  --device cpu --provider CPUExecutionProvider --use_ort_genai --output_path models/onnx-ao --log_level 1

"$python" "$here/app.py" "What's a must-see in Paris?"
