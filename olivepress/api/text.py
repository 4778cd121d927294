"""Text from an ONNX Runtime GenAI model folder, streamed or whole (`olivepress generate`)."""

from collections.abc import Iterator, Mapping
from pathlib import Path

from olivepress.api.tasks import PathLike, model_argument
from olivepress.errors import OlivepressError
from olivepress.runtime.generate import GenAIModel, GenerationOptions


def generate(model: PathLike | None = None, prompt: str | None = None, *, adapters: Mapping[str, PathLike] | None = None,
             use: str | None = None, max_length: int = 256, do_sample: bool = False, temperature: float = 1.0,
             top_p: float = 1.0, top_k: int = 50, repetition_penalty: float = 1.0, use_chat_template: bool = True,
             model_name_or_path: PathLike | None = None) -> Iterator[str]:
    """The answer to `prompt`, piece by piece as it is generated. `adapters` loads .onnx_adapter files by name and
    `use` activates one; `max_length` counts prompt and answer tokens together. The model loads before this returns
    (a bad folder or adapter raises here); generation runs as the pieces are read."""
    folder = Path(model_argument(model, model_name_or_path))
    if prompt is None:
        raise OlivepressError("give a prompt")
    options = GenerationOptions(max_length=max_length, do_sample=do_sample, temperature=temperature, top_p=top_p,
                                top_k=top_k, repetition_penalty=repetition_penalty, use_chat_template=use_chat_template)
    loaded = GenAIModel(folder, {name: Path(file) for name, file in (adapters or {}).items()})
    return loaded.stream(prompt, options, adapter=use)


def generate_text(model: PathLike | None = None, prompt: str | None = None, *, adapters: Mapping[str, PathLike] | None = None,
                  use: str | None = None, max_length: int = 256, do_sample: bool = False, temperature: float = 1.0,
                  top_p: float = 1.0, top_k: int = 50, repetition_penalty: float = 1.0, use_chat_template: bool = True,
                  model_name_or_path: PathLike | None = None) -> str:
    """The whole answer of `generate`, as one string."""
    return "".join(generate(model, prompt, adapters=adapters, use=use, max_length=max_length, do_sample=do_sample,
                            temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                            use_chat_template=use_chat_template, model_name_or_path=model_name_or_path))
