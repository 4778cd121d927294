"""How a pass travels to another process and back: a request file in, a result file out.

Paths in a request or a result are absolute, or `root:NAME/relative` when the two sides see the same
folder at different places (an AzureML job mounts its inputs where it likes): each side maps NAME to
its own folder.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from olivepress import __version__
from olivepress.errors import OlivepressError, PassFailedError
from olivepress.log import OLIVE_LEVELS, logger
from olivepress.models.handles import PATH_FIELDS, ModelHandle, handle_from_config
from olivepress.passes.base import PassContext
from olivepress.workflow.plan import PassStep

PROTOCOL = 1
ROOT = "root:"


class PathCodec:
    """Paths to and from `root:NAME/rel` strings, for the folders named in `roots`."""

    def __init__(self, roots: Mapping[str, Path] | None = None):
        self.roots = {name: Path(folder) for name, folder in (roots or {}).items()}

    def encode(self, path: Path | str) -> str:
        resolved = Path(path).resolve()
        # the deepest root first, so that output/model wins over output
        for name, folder in sorted(self.roots.items(), key=lambda item: -len(item[1].resolve().parts)):
            folder = folder.resolve()
            if resolved == folder or resolved.is_relative_to(folder):
                relative = resolved.relative_to(folder).as_posix()
                return f"{ROOT}{name}" + ("" if relative == "." else f"/{relative}")
        return str(resolved)

    def decode(self, value: str) -> str:
        if not value.startswith(ROOT):
            return value
        name, _, relative = value.removeprefix(ROOT).partition("/")
        if name not in self.roots:
            raise OlivepressError(f"worker: the request names a folder '{name}' that was not given (--root {name}=PATH)")
        return str(self.roots[name] / relative) if relative else str(self.roots[name])

    def encode_handle(self, model: ModelHandle) -> dict[str, Any]:
        config = model.to_config()
        return {key: self.encode(value) if key in PATH_FIELDS and value else value for key, value in config.items()}

    def decode_handle(self, config: dict[str, Any]) -> ModelHandle:
        return handle_from_config({key: self.decode(value) if key in PATH_FIELDS and value else value
                                   for key, value in config.items()})


def pass_reference(step: PassStep) -> str:
    return f"{step.pass_class.__module__}:{step.pass_class.__qualname__}"


def olive_log_level() -> int:
    """This process's log level in Olive's numbers, for the worker to use the same."""
    level = logger.getEffectiveLevel()
    return next((olive for olive, python in OLIVE_LEVELS.items() if python >= level), 2)


def build_request(step: PassStep, model: ModelHandle, context: PassContext, codec: PathCodec,
                  data_configs: list[dict[str, Any]], output_dir: str, scratch_dir: str | None) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL,
        "olivepress_version": __version__,
        "pass": pass_reference(step),
        "step": step.name,
        "config": step.config.model_dump(mode="json"),
        "model": codec.encode_handle(model),
        "output_dir": output_dir,
        "scratch_dir": scratch_dir,
        "accelerator": context.accelerator.as_dict(),
        "data_configs": data_configs,
        "log_level": olive_log_level(),
    }


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def read_result(result_file: Path, step: PassStep, context: PassContext, codec: PathCodec, where: str,
                tail: list[str]) -> ModelHandle:
    """The model the worker made, its metrics copied into `context`; its failure raised as the local pass's would be."""
    if not result_file.is_file():
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        if "No module named 'olivepress" in "\n".join(tail):
            raise OlivepressError(f"{where} has no olivepress installed: install it there ({last})")
        raise PassFailedError(step.name, f"{where} ended without a result: {last}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    error = result.get("error")
    if error is not None:
        if error["kind"] == "input":
            raise OlivepressError(error["message"])
        raise PassFailedError(step.name, f"{error['type']}: {error['message']}")
    context.metrics.update(result.get("metrics", {}))
    logger.debug("%s ran pass %s with %s", where, step.name, result.get("libraries"))
    return codec.decode_handle(result["model"])
