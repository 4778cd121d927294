"""The Olive lab's app.py, written for the current onnxruntime-genai API (append_tokens and
generate_next_token instead of params.input_ids and compute_logits).

Run it from the folder that holds models/onnx-ao, the output of
    olivepress auto-opt --model_name_or_path models/ft/model --adapter_path models/ft/adapter \
      --device cpu --provider CPUExecutionProvider --use_ort_genai --output_path models/onnx-ao
"""

import json
import sys
import time

import onnxruntime_genai as og

question = sys.argv[1] if len(sys.argv) > 1 else "Tell me what to do in London"

model = og.Model("models/onnx-ao/model")
adapters = og.Adapters(model)
adapters.load("models/onnx-ao/model/adapter_weights.onnx_adapter", "travel")

tokenizer = og.Tokenizer(model)
tokenizer_stream = tokenizer.create_stream()

params = og.GeneratorParams(model)
params.set_search_options(max_length=100)
generator = og.Generator(model, params)
generator.set_active_adapter(adapters, "travel")

prompt = tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": question}]), add_generation_prompt=True)
generator.append_tokens(tokenizer.encode(prompt))

print(f"[Travel]: {question}")
start = time.time()
token_count = 0
while not generator.is_done():
    generator.generate_next_token()
    print(tokenizer_stream.decode(generator.get_next_tokens()[0]), end="", flush=True)
    token_count += 1
print()
print(f"{token_count} tokens in {time.time() - start:.2f} s")
