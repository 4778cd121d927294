"""Olive's engine keys that olivepress honours: the evaluation cache, ONNX Runtime's log levels, a log file."""

import logging

from olivepress import api
from olivepress.engine.runner import Engine
from olivepress.evaluation.cache import EvaluationCache


def engine_document(tmp_path, **engine) -> dict:
    return {"input_model": {"type": "HfModel", "model_path": "org/m"},
            "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"), **engine}}


def test_clean_evaluation_cache_forgets_the_metric_values_and_keeps_the_pass_outputs(tmp_path):
    evaluations = EvaluationCache(tmp_path / "cache")
    evaluations.put("k", {"size-bytes": 1.0})
    (tmp_path / "cache" / "entries").mkdir(parents=True)
    Engine(api.load(engine_document(tmp_path))).begin()
    assert evaluations.get("k") == {"size-bytes": 1.0}
    Engine(api.load(engine_document(tmp_path, clean_evaluation_cache=True))).begin()
    assert evaluations.get("k") is None
    assert (tmp_path / "cache" / "entries").is_dir()


def test_ort_log_levels_set_onnxruntime_s_loggers(tmp_path):
    import onnxruntime

    Engine(api.load(engine_document(tmp_path, ort_log_severity_level=0, ort_py_log_severity_level=1))).begin()
    assert logging.getLogger("onnxruntime").level == logging.INFO
    Engine(api.load(engine_document(tmp_path))).begin()  # Olive's default: errors only
    assert logging.getLogger("onnxruntime").level == logging.ERROR
    onnxruntime.set_default_logger_severity(3)


def test_log_to_file_writes_the_log_in_the_current_folder(tiny_llama, tmp_path, cli, write_doc, monkeypatch):
    monkeypatch.chdir(tmp_path)
    document = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama)}, "log_to_file": True,
                "log_severity_level": 1, "no_artifacts": True,
                "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}}
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    logs = list(tmp_path.glob("olivepress-*.log"))
    assert len(logs) == 1 and out.splitlines()[0] == f"log: {logs[0].name}"
    for handler in logging.getLogger("olivepress").handlers[:]:
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logging.getLogger("olivepress").removeHandler(handler)
