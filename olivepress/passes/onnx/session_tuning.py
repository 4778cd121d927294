"""OrtSessionParamsTuning: time ONNX Runtime sessions with each combination of providers and session options on a
data config's inputs (without one, ones shaped as the graph's inputs, as Olive does), keep the fastest, and record
it beside the model (inference_settings.json)."""

import itertools
import json
import shutil
import statistics
import time
from typing import Any, Literal

from pydantic import AliasChoices, Field

from olivepress.errors import OlivepressError
from olivepress.evaluation.forward import model_io_rows
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.onnx.calibration import graph_feeds, input_types
from olivepress.passes.onnx.model_files import load_onnx, onnx_path

INFERENCE_SETTINGS_FILE = "inference_settings.json"
OPT_LEVELS = {0: "ORT_DISABLE_ALL", 1: "ORT_ENABLE_BASIC", 2: "ORT_ENABLE_EXTENDED", 99: "ORT_ENABLE_ALL"}
EXECUTION_MODES = {0: "ORT_SEQUENTIAL", 1: "ORT_PARALLEL"}
DEVICE_PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}


class OrtSessionParamsTuningConfig(PassConfig):
    data_config_fields = ("data_config",)

    data_config: str | None = Field(
        None, description="The data config whose batches are the timed inputs; without one, a row of ones shaped as "
        "the graph's inputs (which must have fixed shapes)."
    )
    providers_list: list[str] | None = Field(
        None, validation_alias=AliasChoices("providers_list", "execution_providers_list"),
        description="Execution providers to try; default the accelerator's (or device's).",
    )
    device: Literal["cpu", "gpu"] | None = Field(None, description="Picks the default provider when providers_list is unset.")
    execution_mode_list: list[Literal["ORT_SEQUENTIAL", "ORT_PARALLEL", 0, 1]] | None = Field(
        None, description="Execution modes to try; default ONNX Runtime's."
    )
    opt_level_list: list[Literal[0, 1, 2, 99]] | None = Field(
        None, description="Graph optimization levels to try (0 none, 1 basic, 2 extended, 99 all); default all."
    )
    intra_thread_num_list: list[int | None] = Field([None], description="intra_op_num_threads values to try.")
    inter_thread_num_list: list[int | None] = Field([None], description="inter_op_num_threads values to try.")
    extra_session_config: dict[str, str | int | float | bool] | None = Field(
        None, description="Session config entries set in every tried session."
    )
    io_bind: bool = Field(False, description="Run with inputs and outputs bound to the device (IOBinding).")
    enable_cuda_graph: bool = Field(False, description="CUDA execution provider: capture a CUDA graph.")
    trt_fp16_enable: bool = Field(False, description="TensorRT execution provider: allow float16.")
    force_evaluate_other_eps: bool = Field(
        False, description="Also try providers other than the accelerator's; otherwise they are skipped."
    )
    enable_profiling: bool = Field(False, description="Write ONNX Runtime's profile of the fastest session beside the model.")
    warmup_num: int = Field(2, ge=0, description="Untimed runs per candidate.")
    test_num: int = Field(10, ge=1, description="Timed runs per candidate (the median counts).")


class OrtSessionParamsTuning(Pass[OnnxModel, OrtSessionParamsTuningConfig]):
    name = "OrtSessionParamsTuning"
    description = "Try ONNX Runtime providers and session options on real inputs; record the fastest for inference."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OrtSessionParamsTuningConfig

    def run(self, model: OnnxModel, config: OrtSessionParamsTuningConfig, context: PassContext) -> OnnxModel:
        feeds = _feeds(model, config, context)
        default = _latency(model, {"providers": [_providers(config, context)[0]]}, feeds, config)
        results = [(_latency(model, candidate, feeds, config), candidate) for candidate in _candidates(config, context)]
        best_latency, best = min(results, key=lambda result: result[0])
        for file in sorted(model.path.iterdir()):
            (shutil.copytree if file.is_dir() else shutil.copy2)(file, context.output_dir / file.name)
        settings = {**best, "io_bind": config.io_bind, "latency_ms": best_latency, "default_latency_ms": default}
        (context.output_dir / INFERENCE_SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
        if config.enable_profiling:
            _profile(model, best, feeds, context)
        context.metrics.update({"latency_ms": best_latency, "default_latency_ms": default, "candidates": len(results)})
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def _feeds(model: OnnxModel, config: OrtSessionParamsTuningConfig, context: PassContext) -> list[dict]:
    if config.data_config is not None:
        return graph_feeds(model, context.data_config(config.data_config),
                           input_types(load_onnx(model, with_weights=False).graph))
    try:
        return model_io_rows(model)
    except OlivepressError as error:
        raise OlivepressError(f"data_config: none is given, and {error}") from None


def _providers(config: OrtSessionParamsTuningConfig, context: PassContext) -> list[str]:
    import onnxruntime

    own = DEVICE_PROVIDERS[config.device] if config.device else context.accelerator.execution_provider
    asked = config.providers_list or [own]
    available = onnxruntime.get_available_providers()
    usable = [p for p in asked if p in available and (p == own or config.force_evaluate_other_eps)]
    if len(usable) < len(asked):
        context.logger.warning("OrtSessionParamsTuning: skipping %s (not available here, or not the accelerator's "
                               "provider without force_evaluate_other_eps)", ", ".join(p for p in asked if p not in usable))
    if config.enable_cuda_graph and "CUDAExecutionProvider" not in usable:
        context.logger.warning("OrtSessionParamsTuning: enable_cuda_graph applies to CUDAExecutionProvider, which is "
                               "not tried here")
    if config.trt_fp16_enable and "TensorrtExecutionProvider" not in usable:
        context.logger.warning("OrtSessionParamsTuning: trt_fp16_enable applies to TensorrtExecutionProvider, which is "
                               "not tried here")
    return usable or ["CPUExecutionProvider"]


def _candidates(config: OrtSessionParamsTuningConfig, context: PassContext) -> list[dict[str, Any]]:
    modes: list[str | None] = [mode if isinstance(mode, str) else EXECUTION_MODES[mode]
                               for mode in config.execution_mode_list or []] or [None]
    levels = [OPT_LEVELS[level] for level in config.opt_level_list or [99]]
    candidates = []
    for provider, mode, level, intra, inter in itertools.product(
        _providers(config, context), modes, levels, config.intra_thread_num_list, config.inter_thread_num_list
    ):
        options = {"graph_optimization_level": level, "execution_mode": mode, "intra_op_num_threads": intra,
                   "inter_op_num_threads": inter, "extra_session_config": config.extra_session_config or {}}
        candidates.append({"providers": [provider], "provider_options": [_provider_options(provider, config)],
                           "session_options": {key: value for key, value in options.items() if value is not None}})
    return candidates


def _provider_options(provider: str, config: OrtSessionParamsTuningConfig) -> dict[str, str]:
    if provider == "CUDAExecutionProvider" and config.enable_cuda_graph:
        return {"enable_cuda_graph": "1"}
    if provider == "TensorrtExecutionProvider" and config.trt_fp16_enable:
        return {"trt_fp16_enable": "1"}
    return {}


def _session(model: OnnxModel, candidate: dict[str, Any], profile_prefix: str | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    settings = candidate.get("session_options", {})
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel,
                                               settings.get("graph_optimization_level", "ORT_ENABLE_ALL"))
    if "execution_mode" in settings:
        options.execution_mode = getattr(onnxruntime.ExecutionMode, settings["execution_mode"])
    for name in ("intra_op_num_threads", "inter_op_num_threads"):
        if name in settings:
            setattr(options, name, settings[name])
    for key, value in settings.get("extra_session_config", {}).items():
        options.add_session_config_entry(key, str(value))
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(str(onnx_path(model)), options, providers=candidate["providers"],
                                        provider_options=candidate.get("provider_options"))


def _latency(model: OnnxModel, candidate: dict[str, Any], feeds: list[dict], config: OrtSessionParamsTuningConfig) -> float:
    """Median milliseconds of one run over the feeds, in turn."""
    session = _session(model, candidate)
    run = _io_bound_runner(session) if config.io_bind else (lambda feed: session.run(None, feed))
    for index in range(config.warmup_num):
        run(feeds[index % len(feeds)])
    times = []
    for index in range(config.test_num):
        start = time.perf_counter()
        run(feeds[index % len(feeds)])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 4)


def _io_bound_runner(session):
    def run(feed: dict) -> None:
        binding = session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for output in session.get_outputs():
            binding.bind_output(output.name)
        session.run_with_iobinding(binding)

    return run


def _profile(model: OnnxModel, candidate: dict[str, Any], feeds: list[dict], context: PassContext) -> None:
    session = _session(model, candidate, profile_prefix=str(context.scratch_dir / "ort_profile"))
    for feed in feeds:
        session.run(None, feed)
    profile = session.end_profiling()
    shutil.move(profile, context.output_dir / "ort_profile.json")
