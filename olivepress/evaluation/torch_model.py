"""A Hugging Face model handle loaded into torch for evaluation: float32, with its PEFT adapter applied."""

from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel


def torch_device(accelerator: Accelerator) -> str:
    import torch

    return "cuda" if accelerator.device == "gpu" and torch.cuda.is_available() else "cpu"


def load_for_eval(model: HfModel, device: str):
    """The model as its task (or model_class) loads it: a causal LM for text-generation, else the task's class."""
    from olivepress.models.loading import load_causal_lm, torch_dtype, without_dtype

    if model.task == "text-generation" and model.model_class is None:
        network = load_causal_lm(model.path, "float32", **without_dtype(model.load_kwargs))
    else:
        import transformers

        from olivepress.passes.onnx.conversion import TASKS

        if model.model_class is None and model.task not in TASKS:
            raise OlivepressError(f"input_model.task: cannot load a '{model.task}' model for evaluation; it loads "
                                  f"{', '.join(TASKS)} (or set model_class)")
        auto_class = getattr(transformers, model.model_class or TASKS[model.task].auto_class)
        network = auto_class.from_pretrained(model.path, dtype=torch_dtype("float32"),
                                             **without_dtype(model.load_kwargs))
    if model.adapter_path is not None:
        from peft import PeftModel

        network = PeftModel.from_pretrained(network, model.adapter_path)
    return network.to(device).eval()
