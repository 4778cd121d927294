"""A Hugging Face model handle loaded into torch for evaluation: float32, with its PEFT adapter applied."""

from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel


def torch_device(accelerator: Accelerator) -> str:
    import torch

    return "cuda" if accelerator.device == "gpu" and torch.cuda.is_available() else "cpu"


def load_for_eval(model: HfModel, device: str):
    from olivepress.models.loading import load_causal_lm, without_dtype

    network = load_causal_lm(model.path, "float32", **without_dtype(model.load_kwargs))
    if model.adapter_path is not None:
        from peft import PeftModel

        network = PeftModel.from_pretrained(network, model.adapter_path)
    return network.to(device).eval()
