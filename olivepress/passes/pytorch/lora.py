"""LoRA, QLoRA and DoRA: train a PEFT adapter on a Hugging Face causal LM with transformers' Trainer."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator

from olivepress.config.data_params import check_eval_size
from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel
from olivepress.models.loading import quantization_method, without_dtype
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.pytorch.activations import USER_KEYS, keep_activations_callback
from olivepress.passes.pytorch.training import (
    LARGE_STEP_TOKENS,
    check_training_args,
    chunked_loss_trainer,
    progress_callback,
    return_freed_memory,
    training_arguments,
)

# Architectures missing from peft's own table of default target modules.
EXTRA_DEFAULT_TARGETS = {"phi3": ["qkv_proj"]}


class LoRAConfig(PassConfig):
    data_config_fields = ("train_data_config", "eval_data_config")
    search_defaults = {"r": (8, 16, 32, 64)}
    added_fields = ("merge_adapter_weights", "use_ort_trainer")

    r: int = Field(64, gt=0, description="Rank of the LoRA update matrices.")
    alpha: float = Field(16, gt=0, description="LoRA scaling: the update is scaled by alpha / r.")
    lora_dropout: float = Field(
        0.0, ge=0, lt=1,
        description="Dropout on the LoRA input (peft's default 0; Olive's is 0.05). On CPU, 0.05 makes each "
        "training step about 17% slower (drawing the masks), for little gain on short fine-tunes.",
    )
    target_modules: list[str] | None = Field(
        None, description="Names of the Linear modules to adapt, e.g. ['q_proj', 'v_proj']; default by architecture "
        "(peft's table; all Linear layers for architectures it does not know)."
    )
    modules_to_save: list[str] | None = Field(
        None, description="Modules trained fully and saved with the adapter, e.g. ['lm_head']."
    )
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Dtype the base model is loaded in for training."
    )
    train_data_config: str = Field(description="Name of the training data in data_configs.")
    eval_data_config: str | None = Field(None, description="Name of the evaluation data in data_configs.")
    eval_dataset_size: int | float | None = Field(
        None, description="Without eval_data_config: hold out this many training rows (int) or this fraction (float) "
        "for evaluation."
    )
    training_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Hugging Face TrainingArguments (e.g. max_steps, per_device_train_batch_size, learning_rate, bf16). "
        "The pass sets output_dir, report_to, save_strategy and disable_tqdm itself; its defaults: learning_rate 2e-4, "
        "logging_steps 1, and bf16 autocast on CPUs with native bf16 arithmetic when torch_dtype is float32 "
        "(set bf16: false for float32 training).",
    )

    merge_adapter_weights: bool = Field(
        False, description="Olive's option: merge the trained adapter into the base weights and output the merged "
        "Hugging Face model (no adapter), as MergeAdapterWeights would. QLoRA keeps its adapter (Olive's option does "
        "not apply to a 4-bit base): a warning says so."
    )
    use_ort_trainer: bool = Field(
        False, description="Olive 0.6's switch to ONNX Runtime training (onnxruntime-training's ORTTrainer), which "
        "trains the same adapter faster on GPU; olivepress trains with transformers' Trainer, so true is accepted with "
        "a warning."
    )

    @field_validator("eval_dataset_size")
    @classmethod
    def _check_eval_size(cls, value: int | float | None) -> int | float | None:
        return check_eval_size(value)

    @field_validator("training_args")
    @classmethod
    def _check_training_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_training_args(value)


LoRAConfigT = TypeVar("LoRAConfigT", bound=LoRAConfig)


class _LoRABase(Pass[HfModel, LoRAConfigT]):
    """The training shared by LoRA, DoRA and QLoRA, for their config type."""

    version = "1"
    accepts = ("hf",)
    produces = "hf"

    def run(self, model: HfModel, config: LoRAConfigT, context: PassContext) -> HfModel:
        if config.use_ort_trainer:
            context.logger.warning("%s: use_ort_trainer (Olive 0.6's ONNX Runtime training) is not used: olivepress "
                                   "trains with transformers' Trainer", self.name)
        adapted = self.train(model, config, context)
        adapter_dir = context.output_dir / "adapter"
        adapted.save_pretrained(adapter_dir, save_embedding_layers=False)
        trained = HfModel(path=model.path, adapter_path=adapter_dir, task=model.task, load_kwargs=model.load_kwargs)
        return self.merged(trained, config, context) if config.merge_adapter_weights else trained

    def merged(self, model: HfModel, config: LoRAConfigT, context: PassContext) -> HfModel:
        """The adapter merged into the base weights, in output_dir/model (merge_adapter_weights)."""
        from dataclasses import replace

        from olivepress.passes.pytorch.merge_adapter import MergeAdapterWeights

        folder = context.output_dir / "model"
        folder.mkdir()
        merger = MergeAdapterWeights()
        return merger.run(model, merger.Config(torch_dtype=None), replace(context, output_dir=folder))

    def train(self, model: HfModel, config: LoRAConfigT, context: PassContext, callbacks: tuple = ()):
        """The trained PeftModel, in memory; its losses and speed go into context.metrics.
        `callbacks` are extra TrainerCallbacks (benchmarks time the steps with one)."""
        import transformers

        from olivepress.data.container import pad_id
        from olivepress.data.tokens import PadCollator
        from olivepress.models.loading import load_tokenizer

        if model.adapter_path is not None:
            raise OlivepressError(
                f"the input model already has an adapter ({model.adapter_path}); merge it first with MergeAdapterWeights"
            )
        self.check_base(model)
        tokenizer = load_tokenizer(model.path)
        train_data, eval_data = self.datasets(config, context, tokenizer)
        args = training_arguments(
            config.training_args, context.scratch_dir / "trainer",
            use_cpu=context.accelerator.device == "cpu", include_num_input_tokens_seen="non_padding",
            bf16=default_bf16(config, context),
        )
        transformers.set_seed(args.seed)  # the adapter's initial weights come from this seed
        peft_model = self.adapted_model(model, config, context)
        row_tokens = longest_row(train_data)
        step_tokens = args.per_device_train_batch_size * row_tokens
        if step_tokens >= LARGE_STEP_TOKENS:
            return_freed_memory()
        report = progress_callback(self.name, row_tokens, on_cpu=context.accelerator.device == "cpu")
        if not USER_KEYS & config.training_args.keys():
            callbacks = (keep_activations_callback(step_tokens, context.logger), *callbacks)
        trainer = chunked_loss_trainer(
            model=peft_model, args=args, train_dataset=train_data, eval_dataset=eval_data,
            data_collator=PadCollator(pad_id(tokenizer)), callbacks=[report, *callbacks],
        )
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        result = trainer.train()
        runtime = result.metrics["train_runtime"]
        context.logger.info("%s: %d steps in %.1f s, average loss %.4f", self.name, result.global_step, runtime,
                            result.training_loss)
        context.metrics.update(train_loss=result.training_loss, train_steps=float(result.global_step),
                               train_tokens_per_s=trainer.state.num_input_tokens_seen / max(runtime, 1e-9))
        if eval_data is not None:
            context.metrics["eval_loss"] = trainer.evaluate()["eval_loss"]
        # drop the autocast wrapper accelerate puts around forward for mixed precision
        return trainer.accelerator.unwrap_model(peft_model, keep_fp32_wrapper=False).eval()

    def check_base(self, model: HfModel) -> None:
        """Refuse a base this pass cannot train on."""

    def datasets(self, config: LoRAConfigT, context: PassContext, tokenizer: Any):
        from olivepress.data.container import HuggingfaceContainer

        train = HuggingfaceContainer(context.data_config(config.train_data_config))
        if config.eval_data_config is None:
            return train.datasets(tokenizer, eval_dataset_size=config.eval_dataset_size)
        train_data, _ = train.datasets(tokenizer)
        eval_data, _ = HuggingfaceContainer(context.data_config(config.eval_data_config)).datasets(tokenizer)
        return train_data, eval_data

    def load_base(self, model: HfModel, config: LoRAConfigT, context: PassContext):
        from olivepress.models.loading import load_causal_lm

        return load_causal_lm(model.path, config.torch_dtype, **without_dtype(model.load_kwargs))

    def lora_options(self, config: LoRAConfigT) -> dict[str, Any]:
        return {}

    def adapted_model(self, model: HfModel, config: LoRAConfigT, context: PassContext):
        from peft import LoraConfig, get_peft_model

        base = self.load_base(model, config, context)
        base.config.use_cache = False  # no generation during training
        targets = config.target_modules or default_target_modules(base.config.model_type)
        if isinstance(targets, list):  # else "all-linear"
            check_target_modules(base, targets)
        context.logger.info("%s: adapting %s", self.name, targets)
        lora_config = LoraConfig(
            # peft annotates lora_alpha as int, but only divides it by r: a float alpha works
            r=config.r, lora_alpha=config.alpha,  # type: ignore[arg-type]
            lora_dropout=config.lora_dropout, target_modules=targets,
            modules_to_save=config.modules_to_save, task_type="CAUSAL_LM", **self.lora_options(config),
        )
        with peft_warnings_filtered():
            return get_peft_model(base, lora_config)


class LoRA(_LoRABase[LoRAConfig]):
    name = "LoRA"
    description = "Fine-tune a LoRA adapter on a Hugging Face causal LM; the base model is referenced, not copied."
    Config = LoRAConfig


class DoRA(LoRA):
    name = "DoRA"
    description = "Fine-tune a DoRA (weight-decomposed LoRA) adapter on a Hugging Face causal LM."

    def lora_options(self, config: LoRAConfig) -> dict[str, Any]:
        return {"use_dora": True}


class QLoRAConfig(LoRAConfig):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="bitsandbytes 4-bit data type of the frozen base weights.")
    double_quant: bool = Field(False, description="Quantize the quantization constants too (saves about 0.4 bit per weight).")
    compute_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Dtype of the 4-bit matmuls; default torch_dtype."
    )


class QLoRA(_LoRABase[QLoRAConfig]):
    name = "QLoRA"
    description = "Fine-tune a LoRA adapter on a bitsandbytes 4-bit (nf4/fp4) copy of the base model; runs on CPU too."
    Config = QLoRAConfig

    def merged(self, model: HfModel, config: QLoRAConfig, context: PassContext) -> HfModel:
        context.logger.warning("QLoRA: merge_adapter_weights does not apply to QLoRA (as in Olive): the adapter is "
                               "kept; merge it into the float base with MergeAdapterWeights")
        return model

    def check_base(self, model: HfModel) -> None:
        method = quantization_method(model.path)
        if method is not None:
            raise OlivepressError(
                f"QLoRA quantizes the base itself, but {model.path} is already quantized ({method}); use LoRA on it instead"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise OlivepressError('QLoRA needs bitsandbytes: pip install "olivepress[bnb]"') from None

    def load_base(self, model: HfModel, config: QLoRAConfig, context: PassContext):
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        from olivepress.models.loading import load_causal_lm, torch_dtype

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=config.quant_type, bnb_4bit_use_double_quant=config.double_quant,
            bnb_4bit_compute_dtype=torch_dtype(config.compute_dtype or config.torch_dtype),
        )
        device = "cuda" if context.accelerator.device == "gpu" else "cpu"
        base = load_causal_lm(model.path, config.torch_dtype, quantization_config=quantization,
                              device_map={"": device}, **without_dtype(model.load_kwargs))
        # the Trainer turns checkpointing on (activation_checkpointing, on by default) after this
        return prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)


def longest_row(dataset: Any) -> int:
    """Tokens in the longest row of a tokenized datasets.Dataset (every row, when they are packed)."""
    import pyarrow.compute as pc

    return int(pc.max(pc.list_value_length(dataset.data.column("input_ids"))).as_py() or 0)


def default_bf16(config: LoRAConfig, context: PassContext) -> bool:
    """bf16 autocast unless told otherwise, on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX): on SmolLM2-135M
    it trains about 1.4x faster than float32 at an average loss within 0.5% (benchmarks/finetune.py)."""
    import torch

    if context.accelerator.device != "cpu" or config.torch_dtype != "float32" or "fp16" in config.training_args:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextmanager
def peft_warnings_filtered() -> Iterator[None]:
    """peft 0.21 reads a transformers attribute deprecated in v5; its FutureWarning says nothing to a user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def default_target_modules(model_type: str) -> list[str] | str:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type) or EXTRA_DEFAULT_TARGETS.get(model_type)
    return list(targets) if targets else "all-linear"


def linear_module_names(model: Any) -> list[str]:
    import torch

    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def check_target_modules(model: Any, targets: list[str]) -> None:
    names = linear_module_names(model)
    for target in targets:
        if not any(name == target or name.endswith(f".{target}") for name in names):
            candidates = sorted({name.rsplit(".", 1)[-1] for name in names})
            raise OlivepressError(
                f"target_modules: the model has no Linear module '{target}'; its Linear modules are {', '.join(candidates)}"
            )
