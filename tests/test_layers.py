"""The layering rule of docs/architecture.md: imports point down only, lazy imports included."""

import ast
from pathlib import Path

import olivepress

PACKAGE = Path(olivepress.__file__).parent

# Lower number = lower layer. A module may import its own layer and the layers below it.
LAYERS = {
    "hashing": 0, "files": 0, "hardware": 0, "errors": 0, "log": 0, "progress": 0, "user_code": 0,
    "config": 1, "plugins": 1,
    "passes": 2, "evaluation": 2, "quantization": 2, "data": 2, "models": 2, "runtime": 2,
    "workflow": 3,
    "systems": 4,
    "engine": 5,
    "hosts": 6,
    "api": 7,
    "cli": 8, "__main__": 8,
}


def layer_of(module: str) -> int | None:
    """The layer of 'olivepress.X...' (None for the package root, which only holds the version)."""
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every olivepress import in the file, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if name.startswith("olivepress.")]


def test_every_module_has_a_layer():
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")}
    assert tops - {"__init__"} <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_imports_point_down_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [part for part in path.relative_to(PACKAGE).with_suffix("").parts if part != "__init__"]
        module = ".".join(["olivepress", *parts])
        own = layer_of(module)
        for line, imported in imported_modules(path):
            target = layer_of(imported)
            if own is not None and target is not None and target > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {imported}")
    assert upward == []
