"""The Python API: what the `olivepress` commands do, as functions. The CLI is a thin layer over these.

- `run(config)` runs a workflow document (a dict, a JSON/YAML file, or one loaded with `load`);
- `quantize`, `finetune`, `auto_opt`, `convert_adapters`, `generate` / `generate_text`: the task commands, with
  their flags as keyword arguments;
- `register_pass(MyPass)` makes a pass class of this process usable by name; `schema()` includes it.

Bad input raises `OlivepressError`, a failed pass `PassFailedError` (a `RunFailedError`), each with the line the
CLI prints.
"""

from olivepress.api.tasks import AdapterFile, auto_opt, convert_adapters, finetune, quantize
from olivepress.api.text import generate, generate_text
from olivepress.api.workflows import Config, Plan, PlannedStep, load, run, schema
from olivepress.passes.registry import register_pass

__all__ = ["AdapterFile", "Config", "Plan", "PlannedStep", "auto_opt", "convert_adapters", "finetune", "generate",
           "generate_text", "load", "quantize", "register_pass", "run", "schema"]
