"""The task commands from Python: `quantize`, `finetune` and `auto_opt` build a workflow document from their keyword
arguments (the CLI's flags) and run it as `run` runs any document; `convert_adapters` writes an adapter file.

Each takes Olive's names too: `model_name_or_path` for `model`, and TrainingArguments' own names as extra keywords
of `finetune` (`per_device_train_batch_size`, `warmup_steps`, ...)."""

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from olivepress.api.workflows import Plan, check_document, run
from olivepress.config.sections import HfModelConfig
from olivepress.config.source import SourceDocument, read_document
from olivepress.engine.auto_opt import Chain, choose_chain, choose_provider
from olivepress.engine.runner import RunResult
from olivepress.errors import OlivepressError
from olivepress.models.azureml_assets import AssetStore
from olivepress.models.default_model import olivepress_home
from olivepress.models.handles import HfModel
from olivepress.models.onnx_adapters import (
    ADAPTER_FILE_SUFFIX,
    AttentionSizes,
    check_adapter_fits,
    folder_lora_inputs,
    onnx_adapter_weights,
    peft_lora_config,
    write_adapter_file,
)
from olivepress.models.resolve import hf_model_folder, resolve_input_model
from olivepress.systems.azureml.client import asset_connect
from olivepress.systems.azureml.client import connect as azureml_connect
from olivepress.systems.azureml.service import Connect

DATA_CONFIG_NAME = "data"
EVAL_DATA_CONFIG_NAME = "eval_data"
FINETUNE_PASS_TYPES = {"lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA"}
QUANTIZE_PASS_TYPES = {"awq": "AWQ", "gptq": "GPTQ", "rtn": "RTN"}
PRECISION_BITS = {"int4": 4, "int8": 8}

PathLike = str | os.PathLike[str]
Names = PathLike | Sequence[PathLike]  # a list, or one comma-separated string as the CLI takes it


@dataclass(frozen=True)
class Data:
    """The data flags: one data config, or the fields of a HuggingfaceContainer (see the CLI's --help)."""

    data_config: PathLike | None = None
    data_name: str | None = None
    data_files: Names | None = None
    train_split: str | None = None
    text_template: str | None = None
    text_field: Names | None = None
    use_chat_template: bool = False
    max_seq_len: int | None = None
    max_samples: int | None = None

    def section(self, required: bool) -> list[dict[str, Any]]:
        """The one data config these describe, named DATA_CONFIG_NAME; [] when no data was given."""
        if self.data_config is not None:
            if self.data_name or self.data_files:
                raise OlivepressError("--data_config replaces --data_name/--data_files; give one or the other")
            config = read_document(Path(self.data_config)).data
            if not isinstance(config, dict):
                raise OlivepressError(f"--data_config {self.data_config}: expected one data config (a mapping)")
            return [{**config, "name": DATA_CONFIG_NAME}]
        if not (self.data_name or self.data_files):
            if required:
                raise OlivepressError("no training data: give --data_name and --data_files, or --data_config FILE")
            return []
        files = _names(self.data_files)
        load = given(data_name=self.data_name or _builder_for(files), data_files=_one_or_list(files), split=self.train_split)
        pre_process = given(text_template=unescape(self.text_template), text_cols=_one_or_list(_names(self.text_field)),
                            use_chat_template=self.use_chat_template or None, max_seq_len=self.max_seq_len,
                            max_samples=self.max_samples)
        return [{"name": DATA_CONFIG_NAME, "type": "HuggingfaceContainer",
                 "load_dataset_config": {"params": load}, "pre_process_data_config": {"params": pre_process}}]


@dataclass(frozen=True)
class Target:
    """The model flags and where and how the built document runs."""

    model: PathLike
    output_path: PathLike
    adapter_path: PathLike | None = None
    trust_remote_code: bool = False
    cache_dir: PathLike | None = None
    device: Literal["cpu", "gpu"] = "cpu"
    save_config: PathLike | None = None
    dry_run: bool = False
    connect: Connect = azureml_connect

    def input_model(self) -> dict[str, Any]:
        section: dict[str, Any] = {"type": "HfModel", "model_path": str(self.model)}
        if self.adapter_path:
            section["adapter_path"] = str(self.adapter_path)
        if self.trust_remote_code:
            section["load_kwargs"] = {"trust_remote_code": True}
        return section

    def run(self, document: dict[str, Any], command: str) -> RunResult | Plan:
        """Check the built document as a file is checked (same errors), then run it (or plan it)."""
        engine_section = document.setdefault("engine", {})
        engine_section["output_dir"] = str(self.output_path)
        if self.cache_dir is not None:
            engine_section["cache_dir"] = str(self.cache_dir)
        if self.device == "gpu" and "systems" not in document:
            document["systems"] = {"local": {"type": "LocalSystem", "accelerators": [{"device": "gpu"}]}}
        if self.save_config is not None:
            Path(self.save_config).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        workflow = check_document(SourceDocument(data=document, file=f"<olivepress {command}>"))
        return run(workflow, dry_run=self.dry_run, connect=self.connect)


# What `quantize` adds to the pass unless float_lm_head: the LM head quantized too (with calibrated rounding by AWQ
# and GPTQ), and an input embedding tied to it stored once, as its table.
QUANTIZED_HEAD = {"lm_head": True, "embeds": "tied"}


def quantize(model: PathLike | None = None, *, output_path: PathLike, algorithm: Literal["awq", "gptq", "rtn"] = "awq",
             precision: Literal["int4", "int8"] = "int4", group_size: int | None = None, num_samples: int | None = None,
             seq_len: int | None = None, float_lm_head: bool = False, data_config: PathLike | None = None,
             data_name: str | None = None, data_files: Names | None = None, train_split: str | None = None,
             text_template: str | None = None, text_field: Names | None = None, use_chat_template: bool = False,
             max_seq_len: int | None = None,
             max_samples: int | None = None, adapter_path: PathLike | None = None, trust_remote_code: bool = False,
             cache_dir: PathLike | None = None, device: Literal["cpu", "gpu"] = "cpu", save_config: PathLike | None = None,
             dry_run: bool = False, model_name_or_path: PathLike | None = None,
             connect: Connect = azureml_connect) -> RunResult | Plan:
    """Weight-only quantization in torch (`olivepress quantize`): OUTPUT/model/ holds packed int weights. Calibrates
    on the data arguments, or on the seed text shipped with olivepress; `rtn` takes none. The LM head is quantized
    too (by AWQ and GPTQ with calibrated rounding), and an input embedding tied to it is stored once as its table,
    unless `float_lm_head`: the GenAI builder's int4 would round both to nearest otherwise. Returns the run's result
    (a `Plan` with `dry_run`)."""
    target = Target(model_argument(model, model_name_or_path), output_path, adapter_path, trust_remote_code, cache_dir, device,
                    save_config, dry_run, connect)
    data = Data(data_config, data_name, data_files, train_split, text_template, text_field, use_chat_template,
                max_seq_len, max_samples)
    data_configs = data.section(required=False)
    calibration = given(num_samples=num_samples, seq_len=seq_len)
    if algorithm == "rtn" and (data_configs or calibration):
        raise OlivepressError("--algorithm rtn uses no calibration data; drop the data flags, --num_samples and --seq_len")
    step = given(type=_choice("algorithm", algorithm, QUANTIZE_PASS_TYPES), bits=_choice("precision", precision, PRECISION_BITS),
                 group_size=group_size, **calibration)
    if not float_lm_head:
        step.update(QUANTIZED_HEAD)
    if data_configs:
        step["data_config"] = DATA_CONFIG_NAME
    document = {"input_model": target.input_model(), "data_configs": data_configs, "passes": {algorithm: step}}
    return target.run(document, "quantize")


def finetune(model: PathLike | None = None, *, output_path: PathLike, method: Literal["lora", "qlora", "dora"] = "lora",
             data_config: PathLike | None = None, data_name: str | None = None, data_files: Names | None = None,
             train_split: str | None = None, text_template: str | None = None, text_field: Names | None = None,
             use_chat_template: bool = False, max_seq_len: int | None = None, max_samples: int | None = None,
             lora_r: int | None = None, lora_alpha: float | None = None, lora_dropout: float | None = None,
             target_modules: Names | None = None, torch_dtype: Literal["float32", "bfloat16", "float16"] | None = None,
             eval_split: str | None = None, eval_dataset_size: float | None = None, batch_size: int | None = None,
             learning_rate: float | None = None, max_steps: int | None = None, num_train_epochs: float | None = None,
             adapter_path: PathLike | None = None, trust_remote_code: bool = False, cache_dir: PathLike | None = None,
             device: Literal["cpu", "gpu"] = "cpu", save_config: PathLike | None = None, dry_run: bool = False,
             model_name_or_path: PathLike | None = None, connect: Connect = azureml_connect,
             **training_args: Any) -> RunResult | Plan:
    """Train a LoRA, QLoRA or DoRA adapter (`olivepress finetune`): OUTPUT/adapter/ and OUTPUT/model/ (its base).
    Other keywords go to Hugging Face TrainingArguments (e.g. `warmup_steps=5`). Returns the run's result (a `Plan`
    with `dry_run`)."""
    target = Target(model_argument(model, model_name_or_path), output_path, adapter_path, trust_remote_code, cache_dir, device,
                    save_config, dry_run, connect)
    data = Data(data_config, data_name, data_files, train_split, text_template, text_field, use_chat_template,
                max_seq_len, max_samples)
    arguments = given(per_device_train_batch_size=batch_size, learning_rate=learning_rate, max_steps=max_steps,
                      num_train_epochs=num_train_epochs) | training_args
    step = given(type=_choice("method", method, FINETUNE_PASS_TYPES), r=lora_r, alpha=lora_alpha, lora_dropout=lora_dropout,
                 torch_dtype=torch_dtype, target_modules=_names(target_modules) or None,
                 eval_dataset_size=_count_or_fraction(eval_dataset_size))
    step.update(train_data_config=DATA_CONFIG_NAME, training_args=arguments)
    data_configs = data.section(required=True)
    if eval_split:
        if eval_dataset_size is not None:
            raise OlivepressError("give --eval_split or --eval_dataset_size, not both")
        data_configs.append(split_of(data_configs[0], eval_split, EVAL_DATA_CONFIG_NAME))
        step["eval_data_config"] = EVAL_DATA_CONFIG_NAME
    document = {"input_model": target.input_model(), "data_configs": data_configs, "passes": {method: step}}
    return target.run(document, "finetune")


def auto_opt(model: PathLike | None = None, *, output_path: PathLike, provider: str | None = None,
             precision: Literal["int4", "int8", "fp16", "fp32"] = "int4", use_ort_genai: bool = False,
             adapter_path: PathLike | None = None, trust_remote_code: bool = False, cache_dir: PathLike | None = None,
             device: Literal["cpu", "gpu"] = "cpu", save_config: PathLike | None = None, dry_run: bool = False,
             model_name_or_path: PathLike | None = None, on_chain: Callable[[Chain], None] | None = None,
             connect: Connect = azureml_connect) -> RunResult | Plan:
    """Export to ONNX Runtime with a pass chain chosen from the model, device, provider and precision
    (`olivepress auto-opt`): OUTPUT/model/, with adapter_weights.onnx_adapter when the model has an adapter.
    `on_chain` is called with the chosen chain before anything runs. Returns the run's result (a `Plan` with
    `dry_run`)."""
    target = Target(model_argument(model, model_name_or_path), output_path, adapter_path, trust_remote_code, cache_dir, device,
                    save_config, dry_run, connect)
    chosen_provider = choose_provider(device, provider)
    input_model = target.input_model()
    assets = AssetStore(olivepress_home() / "azureml", asset_connect(None, connect))  # an azureml: model, read once
    resolved = resolve_input_model(HfModelConfig(**input_model), assets=assets)
    assert isinstance(resolved, HfModel)  # an HfModel section resolves to one
    chain = choose_chain(resolved, chosen_provider, precision, use_ort_genai)
    if on_chain is not None:
        on_chain(chain)
    document = {
        "input_model": input_model,
        "systems": {"local": {"type": "LocalSystem",
                              "accelerators": [{"device": device, "execution_providers": [chosen_provider]}]}},
        "passes": {step.name: step.entry() for step in chain.steps},
    }
    return target.run(document, "auto-opt")


@dataclass(frozen=True)
class AdapterFile:
    """An .onnx_adapter file written by `convert_adapters`."""

    path: Path
    weights: int
    parameters: int
    ranks: list[int]
    dtype: str


def convert_adapters(adapter_path: PathLike, *, output_path: PathLike, model: PathLike | None = None,
                     dtype: Literal["float32", "float16"] | None = None) -> AdapterFile:
    """Write a PEFT LoRA adapter as an .onnx_adapter file for an exported model (`olivepress convert-adapters`).
    With `model` (the exported GenAI folder) the file is checked against its LoRA inputs and takes their dtype."""
    output, adapter = Path(output_path), Path(adapter_path)
    model_dir = Path(model) if model is not None else None
    if output.suffix != ADAPTER_FILE_SUFFIX:
        raise OlivepressError(f"--output_path {output}: the file name must end in {ADAPTER_FILE_SUFFIX}")
    if not output.parent.is_dir():
        raise OlivepressError(f"--output_path {output}: no such folder {output.parent}")
    config = peft_lora_config(adapter)
    lora_inputs = folder_lora_inputs(model_dir) if model_dir is not None else {}
    model_dtype = next(iter(lora_inputs.values())).dtype if lora_inputs else None
    weights = onnx_adapter_weights(adapter, _attention_sizes(model_dir, config), dtype or model_dtype or "float32")
    if model_dir is not None:
        check_adapter_fits(weights, lora_inputs, f"--adapter_path {adapter}")
    write_adapter_file(output, weights)
    ranks = sorted({array.shape[1] for name, array in weights.items() if "lora_A" in name})
    return AdapterFile(output, len(weights), sum(int(array.size) for array in weights.values()), ranks,
                       next(iter(weights.values())).dtype.name)


def _attention_sizes(model_dir: Path | None, adapter_config: dict) -> AttentionSizes | None:
    """q/k/v sizes to unpack a qkv_proj adapter: from the exported model, else from the adapter's base
    model when that is a local folder (or in the local HF cache); None when neither is at hand."""
    if model_dir is not None:
        return AttentionSizes.from_genai_config(json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8")))
    base = adapter_config.get("base_model_name_or_path")
    try:
        folder = hf_model_folder(base) if base else None
    except OlivepressError:
        return None
    return AttentionSizes.from_hf_config(json.loads((folder / "config.json").read_text(encoding="utf-8"))) if folder else None


def split_of(data_config: dict[str, Any], split: str, name: str) -> dict[str, Any]:
    """The same data config reading another split."""
    load = data_config["load_dataset_config"]
    params = load.get("params", load)
    load = {**load, "params": {**params, "split": split}} if "params" in load else {**load, "split": split}
    return {**data_config, "name": name, "load_dataset_config": load}


def unescape(text: str | None) -> str | None:
    """Backslash-n and backslash-t as typed in a shell (the Olive lab passes its template so) become a newline and a tab."""
    return None if text is None else text.replace("\\n", "\n").replace("\\t", "\t")


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not None."""
    return {key: value for key, value in values.items() if value is not None}


def model_argument(model: PathLike | None, model_name_or_path: PathLike | None) -> PathLike:
    """`model`, or Olive's name for it."""
    if (model is None) == (model_name_or_path is None):
        raise OlivepressError("give the model once: as model or as model_name_or_path")
    return model if model is not None else model_name_or_path  # type: ignore[return-value]


def _choice(flag: str, value: str, table: dict[str, Any]) -> Any:
    if value not in table:
        raise OlivepressError(f"--{flag} {value}: expected one of {', '.join(sorted(table))}")
    return table[value]


def _names(value: Names | None) -> list[str]:
    """A list as given, or the items of a comma-separated string."""
    if value is None:
        return []
    items = str(value).split(",") if isinstance(value, str | os.PathLike) else [str(item) for item in value]
    return [item.strip() for item in items if item.strip()]


def _one_or_list(items: list[str]) -> list[str] | str | None:
    return None if not items else items[0] if len(items) == 1 else items


def _count_or_fraction(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value >= 1 else value


def _builder_for(data_files: list[str]) -> str:
    """The datasets builder for the first file's extension (.jsonl -> json)."""
    suffix = Path(data_files[0]).suffix.lower()
    builders = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
    if suffix not in builders:
        raise OlivepressError(f"--data_files {','.join(data_files)}: cannot tell the format from '{suffix}'; give --data_name")
    return builders[suffix]
