"""The job side of a whole workflow on AzureML (engine.host): before `olivepress run`, link the job's
inputs where the document sent with it expects them; after it, export each pass's output.

    python -m olivepress.hosts.azureml_job link NAME=PATH ...
    python -m olivepress.hosts.azureml_job export-steps --cache DIR --footprint FILE --into DIR
"""

import argparse
import json
import os
import sys
from pathlib import Path

from olivepress.models.azureml_assets import model_root

INPUTS_DIR = Path("inputs")  # relative to the job's working folder; the document's paths point into it
MODEL_MARKERS = ("config.json", "model.onnx")


def link(pairs: list[str]) -> None:
    """inputs/NAME -> PATH for each pair; a model input is linked to the folder inside it that holds the model
    (a registered model may keep it a few levels down)."""
    for pair in pairs:
        name, _, target = pair.partition("=")
        source = INPUTS_DIR / name
        source.parent.mkdir(parents=True, exist_ok=True)
        path = Path(target)
        if name in ("model", "adapter") and path.is_dir():
            path = model_root(path, MODEL_MARKERS if name == "model" else ("adapter_config.json",))
        os.symlink(path.resolve(), source)


def export_steps(cache_dir: Path, footprint_file: Path, into: Path) -> None:
    """Each pass output as a self-contained output folder `into/<index>/` (model/, model_config.json)."""
    from olivepress.engine.cache import Cache
    from olivepress.engine.output import write_output

    cache = Cache(cache_dir)
    footprint = json.loads(footprint_file.read_text(encoding="utf-8"))
    for index, step in enumerate(footprint["passes"]):
        entry = cache.lookup(step["output_key"])
        if entry is None:
            raise SystemExit(f"export-steps: pass {step['name']}: no cache entry {step['output_key']}")
        write_output(into / str(index), entry.model, {"pass": step})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m olivepress.hosts.azureml_job")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("link").add_argument("pairs", nargs="+", metavar="NAME=PATH")
    export = commands.add_parser("export-steps")
    export.add_argument("--cache", required=True, type=Path)
    export.add_argument("--footprint", required=True, type=Path)
    export.add_argument("--into", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "link":
        link(args.pairs)
    else:
        export_steps(args.cache, args.footprint, args.into)
    return 0


if __name__ == "__main__":
    sys.exit(main())
