"""Users' Python code that a document names: a `user_script` (and the `script_dir` it imports from), loaded once
per process, its functions found by name, its content hashed for cache keys.

Olive's scripts often register their functions with Olive's decorators (`from olive.data.registry import
Registry`, `@Registry.register_dataset()`), compare a `model_framework` with `olive.constants.Framework` and
annotate with `olive.model`'s handler classes. When olive-ai is not installed, the script runs with stand-ins:
`olive.data.registry` whose decorators record the name and return the function unchanged, `olive.constants`
with Olive's `Framework` values, `olive.model` with the handler names for annotations (building one is refused).
They are present only while the script runs, so an installed olive-ai is never shadowed (its own decorators also
return the function). Any other `olive` import is refused in one line.
"""

import enum
import hashlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from olivepress.errors import OlivepressError

REGISTRY_MODULE = "olive.data.registry"
OLIVE_MODEL_HANDLERS = ("OliveModelHandler", "ONNXModelHandler", "PyTorchModelHandler")
STANDIN_MODULES = ("olive", "olive.data", REGISTRY_MODULE, "olive.constants", "olive.model")
_LOADED: dict[tuple[Path, int, int], "UserScript"] = {}


class Framework(enum.StrEnum):
    """Olive's Framework (olive/constants.py): the values Olive gave a dataloader_func's model_framework."""

    ONNX = "ONNX"
    PYTORCH = "PyTorch"
    QNN = "QNN"
    TENSORFLOW = "TensorFlow"
    SNPE = "SNPE"
    OPENVINO = "OpenVINO"


class UserScript:
    """A loaded script: its module and the names Olive's decorators gave its functions (lower case)."""

    def __init__(self, path: Path, module: types.ModuleType, registered: dict[str, Callable]):
        self.path = path
        self.module = module
        self.registered = registered

    def function(self, name: str, where: str) -> Callable:
        """The function `name`: one the script defines, or registered under that name with Olive's decorators."""
        found = getattr(self.module, name, None)
        if not callable(found):
            found = self.registered.get(name.lower())
        if not callable(found):
            known = sorted({*self.registered, *(n for n, v in vars(self.module).items()
                                                if isinstance(v, types.FunctionType) and v.__module__ == self.module.__name__)})
            raise OlivepressError(f"{where}: {self.path.name} has no function '{name}'; it has {', '.join(known) or 'none'}")
        return found


def script_path(script: str, script_dir: str | None, where: str) -> Path:
    """The script's file: a path (relative to the current directory, else to script_dir), or a module in script_dir."""
    candidates = [Path(script)]
    if script_dir is not None:
        candidates += [Path(script_dir) / script, Path(script_dir) / f"{script}.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise OlivepressError(f"{where}: user script {script} not found" + (f" (nor in {script_dir})" if script_dir else ""))


def check_script_dir(script_dir: str | None, where: str) -> None:
    if script_dir is not None and not Path(script_dir).is_dir():
        raise OlivepressError(f"{where}: script_dir {script_dir}: no such folder")


def load_script(script: str, script_dir: str | None = None, where: str = "user_script") -> UserScript:
    """The script loaded as a module (once per file version in this process), with script_dir importable."""
    check_script_dir(script_dir, where)
    path = script_path(script, script_dir, where)
    stat = path.stat()
    memo_key = (path, stat.st_mtime_ns, stat.st_size)
    if memo_key not in _LOADED:
        _LOADED[memo_key] = _execute(path, script_dir, where)
    return _LOADED[memo_key]


def _execute(path: Path, script_dir: str | None, where: str) -> UserScript:
    for folder in (str(Path(script_dir).resolve()) if script_dir else None, str(path.parent)):
        if folder is not None and folder not in sys.path:
            sys.path.insert(0, folder)
    name = f"olivepress_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise OlivepressError(f"{where}: {path} is not a Python source file")
    module = importlib.util.module_from_spec(spec)
    registered: dict[str, Callable] = {}
    try:
        with _olive_registry_standin(registered):
            sys.modules[name] = module
            spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        sys.modules.pop(name, None)
        missing = error.name or str(error)
        if missing.split(".")[0] == "olive":
            raise OlivepressError(
                f"{where}: {path.name} imports {missing}, a part of Olive (olive-ai) that olivepress does not provide; "
                f"remove that import (only {REGISTRY_MODULE}'s decorators, olive.constants.Framework and "
                f"olive.model's handler names are understood) or install olive-ai"
            ) from None
        raise OlivepressError(f"{where}: {path.name} imports {missing}, which is not installed") from None
    except Exception as error:
        sys.modules.pop(name, None)
        raise OlivepressError(f"{where}: running {path.name} failed: {type(error).__name__}: {error}") from None
    return UserScript(path, module, registered)


@contextmanager
def _olive_registry_standin(registered: dict[str, Callable]) -> Iterator[None]:
    """Stand-ins of olive.data.registry, olive.constants and olive.model while a script runs, unless olive-ai is
    installed."""
    if importlib.util.find_spec("olive") is not None:
        yield
        return
    previous = {name: sys.modules.get(name) for name in STANDIN_MODULES}
    for name in STANDIN_MODULES:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[REGISTRY_MODULE].Registry = _registry_class(registered)  # type: ignore[attr-defined]
    sys.modules["olive.constants"].Framework = Framework  # type: ignore[attr-defined]
    for handler in OLIVE_MODEL_HANDLERS:
        setattr(sys.modules["olive.model"], handler, _annotation_only(handler))
    try:
        yield
    finally:
        for name, module in previous.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _annotation_only(name: str) -> type:
    def refuse(cls: type, *args: Any, **kwargs: Any) -> None:
        raise OlivepressError(f"olive.model.{name}: olivepress names Olive's model handlers for annotations only; "
                              "a script that builds one needs olive-ai installed")

    return type(name, (), {"__new__": refuse})


def _registry_class(registered: dict[str, Callable]) -> type:
    def register(name: str | None = None) -> Callable[[Callable], Callable]:
        def decorator(function: Callable) -> Callable:
            registered[(name or function.__name__).lower()] = function
            return function

        return decorator

    def method(_cls: Any, name: str | None = None) -> Callable[[Callable], Callable]:
        return register(name)

    def typed(_cls: Any, _sub_type: Any, name: str | None = None) -> Callable[[Callable], Callable]:
        return register(name)

    methods = {f"register_{kind}": classmethod(method)
               for kind in ("dataset", "pre_process", "post_process", "dataloader")}
    return type("Registry", (), {"register": classmethod(typed), **methods})


def script_digest(script: str, script_dir: str | None, where: str = "user_script") -> str:
    """sha256 over the script's content and that of every .py file in script_dir (by relative path): what the
    code can do, not where it lies."""
    digest = hashlib.sha256(script_path(script, script_dir, where).read_bytes())
    if script_dir is not None:
        check_script_dir(script_dir, where)
        root = Path(script_dir)
        for file in sorted(root.rglob("*.py")):
            digest.update(f"\n{file.relative_to(root).as_posix()}\0".encode() + file.read_bytes())
    return digest.hexdigest()
