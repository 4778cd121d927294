"""Writing the run's result: the final model, model_config.json and footprint.json, all or nothing."""

import json
from pathlib import Path
from typing import Any

from olivepress.errors import OlivepressError
from olivepress.files import FOOTPRINT_FILE, MODEL_CONFIG_FILE, copy_folder, staged_folder
from olivepress.models.handles import PATH_FIELDS, ModelHandle


def check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a folder that olivepress did not write: it may hold the user's files."""
    if output_dir.is_file():
        raise OlivepressError(f"engine.output_dir: {output_dir} is a file")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / FOOTPRINT_FILE).is_file():
        raise OlivepressError(
            f"engine.output_dir: {output_dir} is not empty and holds no {FOOTPRINT_FILE}; "
            "olivepress only replaces its own output folders"
        )


def write_output(output_dir: Path, model: ModelHandle, footprint: dict[str, Any], from_cache: bool = True) -> ModelHandle:
    """Copy the model's folders into `output_dir/<role>/` and write the two JSON files next to them.

    Everything is staged beside `output_dir` and swapped in with renames, so a failure leaves the
    previous output (or none) in place. A model `from_cache` is copied without reading through any
    symlink (a cache entry holds none; one that appears is refused); only the user's own input model,
    output as it is when there are no passes, may be a folder of links (a Hugging Face hub snapshot).
    """
    check_output_dir(output_dir)
    output_dir = output_dir.resolve()
    with staged_folder(output_dir) as staging:
        return _fill(staging, output_dir, model, footprint, from_cache)


def write_flow_outputs(output_dir: Path, flows: list[tuple[str, ModelHandle, dict[str, Any]]],
                       footprint: dict[str, Any], from_cache: bool = True) -> list[ModelHandle]:
    """Olive's pass flows side by side: each flow's output in `output_dir/<flow name>/` (as `write_output` writes
    one), and `footprint` beside them; all of it published at once."""
    check_output_dir(output_dir)
    output_dir = output_dir.resolve()
    with staged_folder(output_dir) as staging:
        exported = []
        for name, model, flow_footprint in flows:
            (staging / name).mkdir()
            exported.append(_fill(staging / name, output_dir / name, model, flow_footprint, from_cache))
        _write_json(staging / FOOTPRINT_FILE, footprint)
    return exported


def _fill(staging: Path, output_dir: Path, model: ModelHandle, footprint: dict[str, Any], from_cache: bool) -> ModelHandle:
    """Write into `staging` what `output_dir` will hold: the model's folders, model_config.json, footprint.json."""
    folders = {}
    for role, source in model.folders().items():
        _copy_model_folder(source, staging / role, from_cache)
        folders[role] = output_dir / role
    exported = model.with_folders(folders)
    config = exported.to_config()
    _write_json(staging / MODEL_CONFIG_FILE, {"type": config.pop("type"), "config": _relative(config, output_dir)})
    _write_json(staging / FOOTPRINT_FILE, footprint)
    return exported


def _copy_model_folder(source: Path, target: Path, from_cache: bool) -> None:
    try:
        copy_folder(source, target, follow_links=not from_cache)
    except ValueError as error:
        raise OlivepressError(f"{error}: a cached model is not copied through symlinks; run `olivepress cache verify`") from error


def _relative(config: dict[str, Any], base: Path) -> dict[str, Any]:
    return {
        key: Path(value).relative_to(base).as_posix() if key in PATH_FIELDS and value else value
        for key, value in config.items()
    }


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")

