"""Runs one pass from a request file and writes a result file: the other end of the systems' protocol.

    python -m olivepress.systems.worker --request REQUEST.json --result RESULT.json [--root NAME=PATH ...]

Exit codes as the CLI's: 0 done, 2 bad input (OlivepressError), 1 the pass failed.
"""

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from olivepress.errors import OlivepressError
from olivepress.log import setup_logging
from olivepress.systems.protocol import PROTOCOL, PathCodec, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m olivepress.systems.worker")
    parser.add_argument("--request", required=True, type=Path)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--root", action="append", default=[], metavar="NAME=PATH",
                        help="where a folder the request names as root:NAME lies here")
    args = parser.parse_args(argv)
    codec = PathCodec(dict(root.split("=", 1) for root in args.root))
    request = json.loads(args.request.read_text(encoding="utf-8"))
    setup_logging(request.get("log_level", 2))
    args.result.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = run_request(request, codec)
        code = 0
    except OlivepressError as error:
        result, code = {"error": {"kind": "input", "type": type(error).__name__, "message": str(error)}}, 2
    except Exception as error:  # the pass failed: reported to the caller, which names the pass
        traceback.print_exc()
        result, code = {"error": {"kind": "pass", "type": type(error).__name__, "message": str(error)}}, 1
    write_json(args.result, {"protocol": PROTOCOL, **result})
    return code


def run_request(request: dict[str, Any], codec: PathCodec) -> dict[str, Any]:
    from olivepress import __version__
    from olivepress.config.sections import DataConfig
    from olivepress.hardware import Accelerator
    from olivepress.hashing import library_versions
    from olivepress.log import logger
    from olivepress.passes.base import PassContext
    from olivepress.passes.registry import import_pass
    from olivepress.workflow.plan import PassStep

    if request.get("protocol") != PROTOCOL:
        raise OlivepressError(f"worker: request protocol {request.get('protocol')} but this olivepress ({__version__}) "
                              f"speaks {PROTOCOL}; install the same olivepress version on both sides")
    pass_class = import_pass(request["pass"])
    step = PassStep(request["step"], pass_class, pass_class.Config.model_validate(request["config"]))
    data_configs = {data["name"]: DataConfig.model_validate(_decode_data(data, codec)) for data in request["data_configs"]}
    output_dir = Path(codec.decode(request["output_dir"]))
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="olivepress-scratch-") as own_scratch:
        scratch = Path(codec.decode(request["scratch_dir"])) if request.get("scratch_dir") else Path(own_scratch)
        context = PassContext(output_dir=output_dir, scratch_dir=scratch, accelerator=Accelerator(**request["accelerator"]),
                              logger=logger, data_configs=data_configs)
        model = pass_class().run(codec.decode_handle(request["model"]), step.config, context)
    return {"model": codec.encode_handle(model), "metrics": context.metrics, "libraries": library_versions(),
            "python": sys.executable}


def _decode_data(data: dict[str, Any], codec: PathCodec) -> dict[str, Any]:
    """The data config with its staged files' `root:` paths made local."""
    params = dict(data["load_dataset_config"]["params"])
    files = params.get("data_files")
    if isinstance(files, str):
        params["data_files"] = codec.decode(files)
    elif files is not None:
        params["data_files"] = [codec.decode(file) for file in files]
    if params.get("data_dir"):
        params["data_dir"] = codec.decode(params["data_dir"])
    return {**data, "load_dataset_config": {**data["load_dataset_config"], "params": params}}


if __name__ == "__main__":
    sys.exit(main())
