"""Greedy generation for metrics, with one prompt encoding for both backends: transformers for a Hugging Face
model, ONNX Runtime GenAI for a GenAI folder. Each generation is timed (the tokens only, not the decoding)."""

import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from olivepress.config.base import ConfigModel
from olivepress.errors import OlivepressError
from olivepress.hardware import Accelerator
from olivepress.models.handles import HfModel, ModelHandle, OnnxModel, PyTorchModel, single_model


class GenerationUserConfig(ConfigModel):
    """The options of metrics that generate answers (accuracy, latency, throughput)."""

    prompt_template: str | None = Field(
        None, description="Each row's prompt, with {field} replaced by the row's field, e.g. 'Tone of: {phrase}'. "
        "Default: the row's text as the data config's pre-processing makes it."
    )
    use_chat_template: bool = Field(True, description="Wrap the prompt in the tokenizer's chat template, when it has one.")
    max_new_tokens: int = Field(32, gt=0, description="Tokens generated per prompt (greedy).")


@dataclass(frozen=True)
class Generated:
    text: str
    new_tokens: int
    seconds: float


class Generator:
    """The model's tokenizer (from its folder) encodes the prompts and decodes the answers."""

    def __init__(self, model: HfModel | OnnxModel):
        from olivepress.models.loading import load_tokenizer

        self.tokenizer = load_tokenizer(model.path)

    def prompt_ids(self, prompt: str, use_chat_template: bool) -> list[int]:
        if use_chat_template and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(prompt)["input_ids"])

    def generate(self, ids: list[int], max_new_tokens: int, exact: bool = False) -> Generated:
        """Up to `max_new_tokens` tokens (exactly that many when `exact`: end of text does not stop it)."""
        started = time.perf_counter()
        new_ids = self._new_ids(ids, max_new_tokens, exact)
        seconds = time.perf_counter() - started
        return Generated(self.tokenizer.decode(new_ids, skip_special_tokens=True), len(new_ids), seconds)

    def _new_ids(self, ids: list[int], max_new_tokens: int, exact: bool) -> list[int]:
        raise NotImplementedError


class TorchGenerator(Generator):
    def __init__(self, model: HfModel, accelerator: Accelerator):
        from olivepress.evaluation.torch_model import load_for_eval, torch_device

        super().__init__(model)
        self.device = torch_device(accelerator)
        self.network = load_for_eval(model, self.device)

    def _new_ids(self, ids: list[int], max_new_tokens: int, exact: bool) -> list[int]:
        import torch

        input_ids = torch.tensor([ids], device=self.device)
        with torch.no_grad():
            output = self.network.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens if exact else None, do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return output[0, len(ids):].tolist()


class GenAIGenerator(Generator):
    def __init__(self, model: OnnxModel):
        from olivepress.runtime.generate import GenAIModel

        super().__init__(model)
        adapter = model.exported_adapter()
        self.genai = GenAIModel(model.path, dict([adapter]) if adapter else None)
        self.adapter_name = adapter[0] if adapter else None

    def _new_ids(self, ids: list[int], max_new_tokens: int, exact: bool) -> list[int]:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.genai.model)
        length = len(ids) + max_new_tokens
        params.set_search_options(max_length=length, min_length=length if exact else 0, do_sample=False)
        generator = og.Generator(self.genai.model, params)
        if self.adapter_name is not None:
            generator.set_active_adapter(self.genai.adapters, self.adapter_name)
        generator.append_tokens(ids)
        new_ids: list[int] = []
        while not generator.is_done():
            generator.generate_next_token()
            new_ids.append(int(generator.get_next_tokens()[0]))
        return new_ids


def open_generator(model: ModelHandle, accelerator: Accelerator) -> Generator:
    model = single_model(model, "generation")
    if isinstance(model, PyTorchModel):
        raise OlivepressError("a PyTorchModel has no tokenizer to generate with; time it with latency on a dummy "
                              "container or a dataloader of user_script")
    if isinstance(model, HfModel):
        return TorchGenerator(model, accelerator)
    return GenAIGenerator(model)


def percentiles(values: list[float], average: float | None = None) -> dict[str, Any]:
    """avg (the mean unless given), min, max and p50/p90/p95/p99 (linear interpolation)."""
    import numpy as np

    array = np.array(values, dtype=float)
    stats = {"avg": float(array.mean()) if average is None else average, "min": float(array.min()),
             "max": float(array.max())}
    stats.update({f"p{q}": float(np.percentile(array, q)) for q in (50, 90, 95, 99)})
    return stats
