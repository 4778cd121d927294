"""Latency (seconds per request) and throughput (generated tokens per second) of exactly max_new_tokens tokens;
or, Olive's way, of one forward per row of model inputs (evaluation.forward decides which)."""

from typing import Any, ClassVar

from pydantic import Field

from olivepress.config.sections import DataConfig, MetricConfig, MetricKind
from olivepress.errors import OlivepressError
from olivepress.evaluation.forward import (
    dummy_rows,
    forward_seconds,
    input_rows,
    is_forward_timing,
    model_framework,
    model_io_rows,
    ones_rows,
    onnx_settings,
    unread_settings,
    user_rows,
)
from olivepress.evaluation.generation import GenerationUserConfig, percentiles
from olivepress.evaluation.metrics import MeasureContext
from olivepress.log import logger
from olivepress.models.handles import ModelHandle
from olivepress.progress import progress
from olivepress.user_code import load_script, script_digest

PERCENTILES = ("avg", "min", "max", "p50", "p90", "p95", "p99")


class TimingUserConfig(GenerationUserConfig):
    warmup_num: int = Field(1, ge=0, description="Untimed generations (or forwards) first.")
    repeat_test_num: int = Field(10, gt=0, description="Timed generations (or forwards), cycling through the rows.")
    io_bind: bool = Field(False, description="Olive binds inputs and outputs on the device; olivepress feeds host "
                          "arrays, so true is accepted with a warning.")
    shared_kv_buffer: bool = Field(False, description="Olive's one buffer for the past and present key/values under "
                                   "io_bind (Olive 0.6+); olivepress feeds host arrays, so true is accepted with a "
                                   "warning.")
    inference_settings: dict[str, Any] = Field(
        default_factory=dict, description="Olive's inference settings by framework: an ONNX model's timed session "
        "takes those under onnx (execution_provider, provider_options, session_options); others are accepted with a "
        "warning. Written at the metric's level too, as Olive allows."
    )
    batch_size: int | None = Field(None, gt=0, description="Olive's batch size: passed to dataloader_func; with a "
                                   "data config its dataloader decides it, so a value is accepted with a warning.")
    user_script: str | None = Field(None, description="Olive's script holding dataloader_func; its content is part "
                                    "of the evaluation key.")
    script_dir: str | None = Field(None, description="A folder put on sys.path while user_script runs.")
    dataloader_func: str | None = Field(
        None, description="A function of user_script called as func(data_dir, batch_size, model_framework=ONNX or "
        "PyTorch, **func_kwargs['dataloader_func']) (Olive's call) that returns the batches of model inputs; instead "
        "of a data config."
    )
    func_kwargs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Keyword arguments by function name, e.g. {dataloader_func: {...}}."
    )
    data_dir: str | None = Field(None, description="Given to dataloader_func as its first argument.")
    run_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Olive's keyword arguments of a generative run; max_new_tokens is read (it "
        "overrides max_new_tokens above), others are accepted with a warning."
    )
    input_names: list[str] | None = Field(None, description="With input_shapes: rows of ones by these names "
                                          "(Olive's dummy data), instead of a data config.")
    input_shapes: list[list[int]] | None = Field(None, description="The shape of each input named by input_names.")
    input_types: list[str] | None = Field(None, description="The numpy type of each input (default int64).")


class LatencyMetricConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(PERCENTILES, "avg", False, True)
    description: ClassVar[str] = "Seconds per request: the prompt plus exactly max_new_tokens tokens."
    user_config: TimingUserConfig = Field(default_factory=TimingUserConfig)

    def reads_data(self) -> bool:
        """Never required: without a data config, metric-level data or else the model's input shapes are timed."""
        return False

    def key_material(self) -> dict[str, Any]:
        user = self.user_config
        if user.user_script is None:
            return {}
        return {"script": script_digest(user.user_script, user.script_dir, "user_config.user_script")}


class ThroughputMetricConfig(LatencyMetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(PERCENTILES, "avg", True, True)
    description: ClassVar[str] = "Generated tokens per second, per request."


def metric_rows(user: TimingUserConfig, framework: str) -> list | None:
    """The rows of Olive's metric-level data: the first batch of the user's dataloader_func (called as Olive called
    it, with the model's `framework`; Olive timed that batch alone, and its loaders may never end), or ones shaped by
    input_shapes; None without either."""
    if user.dataloader_func is not None:
        if user.user_script is None:
            raise OlivepressError("user_config.dataloader_func: give user_script, the file that holds it")
        function = load_script(user.user_script, user.script_dir, "user_config.user_script").function(
            user.dataloader_func, "user_config.dataloader_func")
        kwargs = user.func_kwargs.get("dataloader_func", {})
        return user_rows(function(user.data_dir, user.batch_size or 1, model_framework=framework, **kwargs), limit=1)
    if user.input_names is None or user.input_shapes is None:
        return None
    return ones_rows(user.input_names, user.input_shapes, user.input_types)


def measure(metric: LatencyMetricConfig, model: ModelHandle, data_config: DataConfig | None,
            context: MeasureContext) -> dict[str, float]:
    """Latency or throughput, by the metric's class. Prompts cycle through the data's rows; warm-up runs are
    not timed."""
    from olivepress.evaluation.data import evaluation_rows, prompts

    user = metric.user_config
    latency = not isinstance(metric, ThroughputMetricConfig)
    _warn_unread(metric, model)
    if data_config is None or is_forward_timing(model, data_config):
        rows = input_rows(model, data_config) if data_config is not None \
            else metric_rows(user, model_framework(model)) or model_io_rows(model)
        seconds, batch = forward_seconds(model, rows, context.accelerator, user.warmup_num, user.repeat_test_num,
                                         onnx_settings(user.inference_settings))
        return percentiles(seconds) if latency else percentiles([batch / value for value in seconds],
                                                                average=batch * len(seconds) / sum(seconds))
    generator = context.generator()
    max_new_tokens = int(user.run_kwargs.get("max_new_tokens", user.max_new_tokens))
    if data_config.is_dummy():  # generative dummy prompts: their token ids as they are
        ids = [[int(token) for token in row["input_ids"][0]] for row in dummy_rows(data_config)]
    else:
        rows = evaluation_rows(data_config)
        ids = [generator.prompt_ids(text, user.use_chat_template)
               for text in prompts(data_config, rows, user.prompt_template, generator.tokenizer)]
    for number in range(user.warmup_num):
        generator.generate(ids[number % len(ids)], max_new_tokens, exact=True)
    runs = [generator.generate(ids[number % len(ids)], max_new_tokens, exact=True)
            for number in progress(range(user.repeat_test_num), desc="latency" if latency else "throughput",
                                   unit="request")]
    if latency:
        return percentiles([run.seconds for run in runs])
    total = sum(run.new_tokens for run in runs) / sum(run.seconds for run in runs)
    return percentiles([run.new_tokens / run.seconds for run in runs], average=total)


def _warn_unread(metric: LatencyMetricConfig, model: ModelHandle) -> None:
    user = metric.user_config
    unread = unread_settings(user.inference_settings, user.io_bind, model, user.shared_kv_buffer)
    unread += [f"run_kwargs.{key}" for key in user.run_kwargs if key != "max_new_tokens"]
    if unread:
        logger.warning("metric %s: %s accepted from the Olive document but not used by olivepress (see "
                       "docs/evaluation-and-search.md)", metric.name, ", ".join(unread))
