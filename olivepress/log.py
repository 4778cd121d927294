"""Logging set-up with Olive's numeric levels (0 = verbose ... 4 = critical only)."""

import logging
import os

OLIVE_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR, 4: logging.CRITICAL}
DEFAULT_LEVEL = 2

logger = logging.getLogger("olivepress")


def setup_logging(olive_level: int = DEFAULT_LEVEL) -> None:
    """Quiet by default (warnings and errors); `--log_level 1` shows progress notes, 0 shows everything."""
    level = OLIVE_LEVELS.get(olive_level, logging.WARNING)
    handler = logging.StreamHandler()
    verbose = level <= logging.DEBUG
    handler.setFormatter(logging.Formatter("[olivepress] %(levelname)s: %(message)s" if verbose else "%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if level > logging.DEBUG:
        _quiet_third_party()


def _quiet_third_party() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # the libraries' own bars (loading weights, generating splits); olivepress shows one bar per long step
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "onnxruntime", "datasets", "huggingface_hub", "torch", "bitsandbytes", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
