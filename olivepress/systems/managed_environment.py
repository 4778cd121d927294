"""Olive 0.6's `olive_managed_env`: the Python environment a PythonEnvironment system runs in, built by olivepress.

Olive built a virtual environment for such a system and installed the system's `requirements_file` into it. olivepress
builds it the same way: a virtual environment of the running interpreter that also sees the running environment's
packages (a .pth file adds its site-packages, so olivepress, torch and onnxruntime are importable there), with
`requirements_file` installed into it by pip. It lies under the cache (`<cache_dir>/environments/<key>`), keyed by the
requirements file's content and the running interpreter, and is reused by every run whose key is the same. It is built
in a temporary folder that is renamed into place only when complete: a failed build leaves nothing that looks ready.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
import venv
from pathlib import Path

from olivepress.errors import OlivepressError
from olivepress.log import logger

ENVIRONMENTS_FOLDER = "environments"
READY_FILE = "olivepress-environment.txt"  # written last, before the rename: what the environment was built from


def environment_key(requirements: bytes) -> str:
    """The environment's key: the requirements' content, the running interpreter and the packages it sees."""
    material = b"\0".join([requirements, sys.version.encode(), sys.prefix.encode(),
                           *(path.encode() for path in _site_packages())])
    return hashlib.sha256(material).hexdigest()[:32]


def managed_python(requirements_file: str | None, cache_dir: Path, where: str) -> Path:
    """The python of the environment for `requirements_file` (built unless a complete one is in the cache)."""
    requirements = Path(requirements_file) if requirements_file is not None else None
    if requirements is not None and not requirements.is_file():
        raise OlivepressError(f"{where}.requirements_file: {requirements_file}: no such file")
    content = requirements.read_bytes() if requirements is not None else b""
    root = cache_dir / ENVIRONMENTS_FOLDER
    folder = root / environment_key(content)
    if (folder / READY_FILE).is_file():
        logger.info("%s: olive_managed_env: using the environment built before in %s", where, folder)
        return _python(folder)
    root.mkdir(parents=True, exist_ok=True)
    building = root / f".building-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        _build(building, requirements, where)
        try:
            os.rename(building, folder)
        except OSError:
            if not (folder / READY_FILE).is_file():  # not another run's complete build: a real failure
                raise
            logger.info("%s: olive_managed_env: another run built the same environment first; using it", where)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    logger.info("%s: olive_managed_env: environment ready in %s", where, folder)
    return _python(folder)


def _build(folder: Path, requirements: Path | None, where: str) -> None:
    logger.info("%s: olive_managed_env: creating a virtual environment in %s", where, folder)
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(folder)
    python = _python(folder)
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # the running environment's packages, after the environment's own (addsitedir also reads their .pth files, so an
    # editable install of olivepress is found too)
    lines = [f"import site; site.addsitedir({path!r})" for path in _site_packages()]
    Path(own, "olivepress-running-environment.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if requirements is not None:
        logger.info("%s: olive_managed_env: installing %s with pip", where, requirements)
        _pip_install(python, requirements, where)
    (folder / READY_FILE).write_text(f"requirements_file: {requirements}\npython: {sys.version.split()[0]}\n"
                                     f"running environment: {sys.prefix}\n", encoding="utf-8")


def _pip_install(python: Path, requirements: Path, where: str) -> None:
    """pip (the running environment's, which the new one sees) installs the requirements into the new environment;
    relative paths in the file are read from its folder."""
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "-r", requirements.resolve().name]
    lines: list[str] = []
    with subprocess.Popen(command, cwd=requirements.resolve().parent, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            line = line.rstrip("\n")
            logger.info("pip: %s", line)
            lines.append(line)
    if process.returncode != 0:
        errors = [line for line in lines if line.startswith("ERROR:")] or [line for line in lines if line.strip()]
        last = errors[-1].strip() if errors else f"exit status {process.returncode}"
        raise OlivepressError(f"{where}.requirements_file: pip could not install {requirements}: {last}")


def _site_packages() -> list[str]:
    import site

    return [path for path in site.getsitepackages() if Path(path).is_dir()]


def _python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
