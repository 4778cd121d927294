"""Text generation with ONNX Runtime GenAI, with named LoRA adapters switchable per request."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from olivepress.errors import OlivepressError
from olivepress.hardware import provider_of_builder_name
from olivepress.models.onnx_adapters import (
    check_adapter_fits,
    folder_lora_inputs,
    read_adapter_file,
)


@dataclass(frozen=True)
class GenerationOptions:
    max_length: int = 256  # prompt plus generated tokens, as in onnxruntime-genai
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    use_chat_template: bool = True


def _check_providers(og, model_dir: Path) -> None:
    """Name the missing package up front instead of letting the runtime fail on a missing library."""
    config = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
    options = config.get("model", {}).get("decoder", {}).get("session_options", {}).get("provider_options", [])
    for provider in (name for option in options for name in option):
        known = provider_of_builder_name(provider)
        if known is not None and known.genai_check is not None and not getattr(og, known.genai_check)():
            raise OlivepressError(
                f"{model_dir} was built for the {provider} execution provider, which this onnxruntime-genai "
                f"lacks; install {known.package}, or rebuild the model for cpu"
            )


def _check_graph_files(model_dir: Path) -> None:
    """A folder whose genai_config.json names a graph it lacks is a split model's (its parts carry the builder's
    config along): say so instead of letting the runtime fail on the missing file."""
    decoder = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8")).get("model", {}).get("decoder", {})
    files = [decoder["filename"]] if "filename" in decoder else []
    files += [stage["filename"] for stages in decoder.get("pipeline", []) for stage in stages.values()]
    missing = next((file for file in files if not (model_dir / file).is_file()), None)
    if missing is not None:
        raise OlivepressError(f"{model_dir}: genai_config.json names {missing}, which the folder lacks: a composite "
                              "model of SplitModel's parts runs in GenAI after StaticLLM, or after ComposeOnnxModels")


class GenAIModel:
    """A loaded GenAI model folder and its adapters (name -> .onnx_adapter file)."""

    def __init__(self, model_dir: Path, adapters: dict[str, Path] | None = None):
        import onnxruntime_genai as og

        if not (model_dir / "genai_config.json").is_file():
            raise OlivepressError(f"{model_dir}: not an ONNX Runtime GenAI model folder (no genai_config.json)")
        _check_providers(og, model_dir)
        _check_graph_files(model_dir)
        self._og = og
        self.model = og.Model(str(model_dir))
        self.tokenizer = og.Tokenizer(self.model)
        self.adapter_names = sorted(adapters or {})
        self.adapters = og.Adapters(self.model) if adapters else None
        lora_inputs = folder_lora_inputs(model_dir) if adapters else {}
        for name, file in (adapters or {}).items():
            if not file.is_file():
                raise OlivepressError(f"--adapter {name}={file}: no such file")
            check_adapter_fits(read_adapter_file(file), lora_inputs, f"--adapter {name}={file}")
            assert self.adapters is not None  # created above whenever there are adapters
            try:
                self.adapters.load(str(file), name)
            except Exception as error:  # onnxruntime-genai raises plain RuntimeErrors
                raise OlivepressError(f"--adapter {name}={file}: cannot load: {error}") from None

    def prompt_ids(self, prompt: str, use_chat_template: bool) -> list[int]:
        text = prompt
        if use_chat_template:
            messages = json.dumps([{"role": "user", "content": prompt}])
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return list(self.tokenizer.encode(text))

    def stream(self, prompt: str, options: GenerationOptions, adapter: str | None = None) -> Iterator[str]:
        """Yield the answer's text piece by piece."""
        decoder = self.tokenizer.create_stream()
        for token in self.tokens(prompt, options, adapter):
            yield decoder.decode(token)

    def tokens(self, prompt: str, options: GenerationOptions, adapter: str | None = None) -> Iterator[int]:
        """Yield the answer's token ids one by one."""
        og = self._og
        params = og.GeneratorParams(self.model)
        params.set_search_options(
            max_length=options.max_length, do_sample=options.do_sample, temperature=options.temperature,
            top_p=options.top_p, top_k=options.top_k, repetition_penalty=options.repetition_penalty,
        )
        generator = og.Generator(self.model, params)
        if adapter is not None:
            if adapter not in self.adapter_names:
                known = ", ".join(self.adapter_names) or "none loaded"
                raise OlivepressError(f"--use {adapter}: no adapter of that name (loaded: {known})")
            generator.set_active_adapter(self.adapters, adapter)
        ids = self.prompt_ids(prompt, options.use_chat_template)
        if len(ids) >= options.max_length:
            raise OlivepressError(f"--max_length {options.max_length} leaves no room: the prompt alone is {len(ids)} tokens")
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
            yield int(generator.get_next_tokens()[0])
