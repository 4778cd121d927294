"""PythonEnvironment: the pass runs in another Python environment (e.g. with another onnxruntime build).

The engine writes a request file, starts `<python> -m olivepress.systems.worker` in that environment
with the document's environment variables and PATH additions, relays its output, and reads the result
file. The pass writes straight into the engine's staging folder, so its output lands in the same cache
under the same key as a local run's.
"""

import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from olivepress.config.sections import PythonEnvironmentSystemConfig
from olivepress.errors import OlivepressError
from olivepress.models.handles import ModelHandle
from olivepress.passes.base import PassContext
from olivepress.systems.base import System
from olivepress.systems.protocol import (
    PathCodec,
    build_request,
    read_result,
    write_json,
)
from olivepress.workflow.plan import PassStep

TAIL_LINES = 20


class PythonEnvironmentSystem(System):
    kind = "PythonEnvironment"

    def __init__(self, name: str, config: PythonEnvironmentSystemConfig, cache_dir: Path):
        """With olive_managed_env, the environment is built (or found) under `cache_dir` (the engine's cache)."""
        super().__init__(name)
        self.config = config
        if config.olive_managed_env:
            from olivepress.systems.managed_environment import managed_python

            self.python = managed_python(config.requirements_file, cache_dir, f"systems.{name}")
        else:
            assert config.python_environment_path is not None  # the config's validator
            self.python = find_python(Path(config.python_environment_path), f"systems.{name}.python_environment_path")

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "python": str(self.python)}

    def run_pass(self, step: PassStep, model: ModelHandle, context: PassContext) -> ModelHandle:
        codec = PathCodec()
        # the data the step names, its AzureML files already downloaded by the engine: the worker reads local files
        names = dict.fromkeys(step.config.data_config_names().values())
        data = [context.data_config(name).model_dump(mode="json") for name in names]
        request = build_request(step, model, context, codec, data, str(context.output_dir), str(context.scratch_dir))
        request_file, result_file = context.scratch_dir / "request.json", context.scratch_dir / "result.json"
        write_json(request_file, request)
        command = [str(self.python), "-m", "olivepress.systems.worker", "--request", str(request_file),
                   "--result", str(result_file)]
        tail = run_relaying(command, self.environment())
        return read_result(result_file, step, context, codec, f"python environment {self.python}", tail)

    def environment(self) -> dict[str, str]:
        """This process's environment plus the document's variables; PATH starts with prepend_to_path and
        the environment's own bin folder, as if it were activated."""
        env = {**os.environ, **self.config.environment_variables}
        path = [*self.config.prepend_to_path, str(self.python.parent), env.get("PATH", "")]
        env["PATH"] = os.pathsep.join(part for part in path if part)
        return env


def find_python(path: Path, where: str) -> Path:
    """The python executable of an environment given as its folder, its bin/ folder, or the executable."""
    candidates = [path] if path.is_file() else [
        path / name for name in ("bin/python", "bin/python3", "python", "python3", "python.exe", "Scripts/python.exe")
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()  # not resolved: a venv's python is a symlink that must stay one
    if not path.exists():
        raise OlivepressError(f"{where}: {path}: no such folder")
    raise OlivepressError(f"{where}: no python executable in {path} (looked for bin/python, python, Scripts/python.exe)")


def run_relaying(command: list[str], env: dict[str, str]) -> list[str]:
    """Run `command`, copying its output to this process's stderr; returns the last lines."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            sys.stderr.write(line)
            tail.append(line.rstrip("\n"))
    return list(tail)
