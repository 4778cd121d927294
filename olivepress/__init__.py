"""olivepress: a declarative model-optimization workflow engine.

The Python API (see docs/python-api.md): `run`, `quantize`, `finetune`, `auto_opt`, `convert_adapters`,
`generate`, `generate_text`, `register_pass`, `schema`. They are imported on first use, so that
`import olivepress` stays light (no torch, no onnxruntime).
"""

import importlib
from typing import TYPE_CHECKING, Any

from olivepress.errors import OlivepressError, PassFailedError, RunFailedError

__version__ = "0.1.0"

__all__ = ["AdapterFile", "OlivepressError", "PassFailedError", "Plan", "PlannedStep", "RunFailedError", "RunResult",
           "StepResult", "__version__", "auto_opt", "convert_adapters", "finetune", "generate", "generate_text", "load",
           "quantize", "register_pass", "run", "schema"]

# The module each name is imported from on first use; the errors are light and imported at once.
_LAZY = {name: "olivepress.engine.runner" if name in ("RunResult", "StepResult") else "olivepress.api"
         for name in __all__ if name not in globals()}

if TYPE_CHECKING:
    from olivepress.api import (
        AdapterFile,
        Plan,
        PlannedStep,
        auto_opt,
        convert_adapters,
        finetune,
        generate,
        generate_text,
        load,
        quantize,
        register_pass,
        run,
        schema,
    )
    from olivepress.engine.runner import RunResult, StepResult


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'olivepress' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
