"""Olive's inference loop, which its accuracy metrics and metric_func read: the model run on each labelled batch
of the data, each output post-processed into predictions, and predictions, raw outputs (logits) and labels
joined over the data. Everything the user's functions see is a torch tensor, as in Olive."""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from olivepress.config.sections import DataConfig
from olivepress.data.batches import Row, as_row
from olivepress.errors import OlivepressError
from olivepress.evaluation.forward import OnnxRunner, TorchRunner, model_framework
from olivepress.hardware import Accelerator
from olivepress.models.handles import ModelHandle, OnnxModel, PyTorchModel, single_model


class ModelOutput(NamedTuple):
    """Olive's OliveModelOutput: the post-processed predictions and the raw outputs."""

    preds: Any
    logits: Any


def _logits(output: Any) -> Any:
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, dict):
        if "logits" not in output:
            raise OlivepressError(f"the model's outputs ({', '.join(output)}) hold no logits to classify; "
                                  "give a post_process_data_config function")
        return output["logits"]
    return output


def text_classification(output: Any, **_: Any) -> Any:
    """Olive's text_classification_post_process: the best class of each row."""
    import torch

    return torch.argmax(_logits(output), dim=1)


def per_token_classes(output: Any, **_: Any) -> Any:
    """Olive's ner_post_process: the best class of each token."""
    import torch

    return torch.argmax(_logits(output), dim=-1)


def unchanged(output: Any, **_: Any) -> Any:
    return output


# Olive's built-in post-processing by type; None: HuggingfaceContainer's default (DataContainer's is unchanged).
BUILTIN_POST_PROCESS: dict[str | None, Callable[..., Any]] = {
    None: text_classification, "text_classification_post_process": text_classification,
    "ner_post_process": per_token_classes, "text_generation_post_process": _logits, "post_process": unchanged,
}


def post_processing(data_config: DataConfig, user_function: Callable | None) -> Callable[[Any], Any]:
    """The metric's own post_processing_func, else the data config's post-processing."""
    from olivepress.data.container import HuggingfaceContainer

    if user_function is not None:
        return user_function
    component = data_config.post_process_data_config
    function = HuggingfaceContainer(data_config).user_function("post_process_data_config")
    if function is None:
        function = unchanged if component.type is None and data_config.type == "DataContainer" \
            else BUILTIN_POST_PROCESS[component.type]
    return partial(function, **component.params) if component.params else function


def labelled_batches(model: ModelHandle, data_config: DataConfig) -> list[tuple[Row, np.ndarray]]:
    """(model inputs, labels) of each batch: the user's dataloader's, else the rows tokenized for classification
    with the model's tokenizer."""
    from olivepress.data.container import HuggingfaceContainer

    container = HuggingfaceContainer(data_config)
    if data_config.user_function("dataloader_config") is not None:
        loads = data_config.user_function("load_dataset_config") or container.load_params.data_name
        batches = container.user_batches(container.records() if loads else None, model_framework(model))
        return [_labelled(batch, number) for number, batch in enumerate(batches)]
    if isinstance(model, PyTorchModel) or model.path is None:
        raise OlivepressError(f"data_configs.{data_config.name}: a PyTorchModel has no tokenizer to make labelled "
                              "rows with; give a dataloader function of user_script that yields (inputs, labels)")
    from olivepress.models.loading import load_tokenizer, read_model_config

    label2id = read_model_config(model.path).get("label2id") if (model.path / "config.json").is_file() else None
    batches = container.labelled_batches(load_tokenizer(model.path), label2id)
    if batches is None:
        raise OlivepressError(f"data_configs.{data_config.name}.pre_process_data_config.params.label_col: the data "
                              f"has no column '{container.pre_process_params.label_col}' of labels; its fields are "
                              f"{', '.join(container.records().column_names)}")
    return batches


def _labelled(batch: Any, number: int) -> tuple[Row, np.ndarray]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise OlivepressError(f"dataloader_config: batch {number} is not (inputs, labels); accuracy compares the "
                              "model's predictions with labels, so the dataloader must yield both")
    return as_row(batch[0]), np.asarray(batch[1].detach().cpu() if hasattr(batch[1], "detach") else batch[1])


def run_inference(model: ModelHandle, data_config: DataConfig, accelerator: Accelerator,
                  post_function: Callable | None = None,
                  settings: dict[str, Any] | None = None) -> tuple[ModelOutput, Any]:
    """The predictions and raw outputs over the data, and its labels (torch tensors, joined along rows); `settings`:
    Olive's ONNX inference settings for the session."""
    import torch

    post = post_processing(data_config, post_function)
    batches = labelled_batches(model, data_config)
    if not batches:
        raise OlivepressError(f"data_configs.{data_config.name}: the data makes no batches")
    model = single_model(model, "evaluation")
    runner = OnnxRunner(model, accelerator, settings) if isinstance(model, OnnxModel) \
        else TorchRunner(model, accelerator)
    preds, logits, targets = [], [], []
    for inputs, labels in batches:
        output = _as_torch(runner, runner(runner.feeds(inputs)))
        preds.append(torch.as_tensor(post(output)).cpu())
        logits.append(output.logits if hasattr(output, "logits") else output)
        targets.append(torch.as_tensor(labels))
    return ModelOutput(torch.cat(preds), _joined(logits)), torch.cat(targets)


def _as_torch(runner: OnnxRunner | TorchRunner, output: Any) -> Any:
    """An ONNX graph's outputs as Olive gives them: its one output as a tensor, else a dict by output name."""
    import torch

    if isinstance(runner, TorchRunner):
        return output
    names = [value.name for value in runner.session.get_outputs()]
    tensors = [torch.from_numpy(np.asarray(value)) for value in output]
    return tensors[0] if len(tensors) == 1 else dict(zip(names, tensors, strict=True))


def _joined(logits: list[Any]) -> Any:
    import torch

    if isinstance(logits[0], dict):
        return {name: torch.cat([batch[name].detach().cpu() for batch in logits]) for name in logits[0]}
    return torch.cat([torch.as_tensor(batch).detach().cpu() for batch in logits])
