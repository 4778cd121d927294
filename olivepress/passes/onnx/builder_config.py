"""What the ONNX Runtime GenAI builder (onnxruntime-genai 0.18) can read: the architectures it exports, and
config.json rewritten from the shape transformers 5 writes into the one the builder reads.

The builder loads config.json with the installed transformers and reads RoPE settings from a flat
`rope_parameters` dict (copying its keys onto the config). transformers 5 writes two shapes it cannot read:

- a per-layer-type `rope_parameters` (Gemma 3: `{"full_attention": {...}, "sliding_attention": {...}}`),
  where the builder wants the global layers' parameters flat and reads the local layers' theta from
  `rope_local_base_freq`, a key transformers 5 folds into `rope_parameters` (so it is put back there);
- a LongRoPE `rope_parameters` without the legacy `type` key, which the Phi-3 builder reads.

A model that needs neither is built from its own folder; otherwise from a copy in the scratch folder holding the
rewritten config.json and links to every other file.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olivepress.errors import OlivepressError

# Text-only decoder architectures the ONNX Runtime GenAI builder exports (onnxruntime-genai 0.18).
BUILDER_ARCHITECTURES = frozenset({
    "ChatGLMForConditionalGeneration", "ChatGLMModel", "Ernie4_5ForCausalLM", "GemmaForCausalLM",
    "Gemma2ForCausalLM", "Gemma3ForCausalLM", "GptOssForCausalLM", "GraniteForCausalLM",
    "GraniteMoeHybridForCausalLM", "HunYuanDenseV1ForCausalLM", "InternLM2ForCausalLM", "Lfm2ForCausalLM",
    "Lfm2MoeForCausalLM", "LlamaForCausalLM", "MistralForCausalLM", "NemotronForCausalLM", "OlmoForCausalLM",
    "PhiForCausalLM", "Phi3ForCausalLM", "PhiMoEForCausalLM", "Phi3SmallForCausalLM", "Qwen2ForCausalLM",
    "Qwen3ForCausalLM", "SmolLM3ForCausalLM",
})

BUILDER_INPUT_DIR = "builder-input"
CONFIG_FILE = "config.json"


def architecture_of(config: dict[str, Any]) -> str:
    return (config.get("architectures") or ["unknown"])[0]


def check_supported(config: dict[str, Any], where: Path) -> None:
    architecture = architecture_of(config)
    if architecture not in BUILDER_ARCHITECTURES:
        raise OlivepressError(f"{where / CONFIG_FILE}: the GenAI builder does not export {architecture}; it exports "
                              f"{', '.join(sorted(BUILDER_ARCHITECTURES))}")


def builder_input(model_path: Path, scratch_dir: Path) -> Path:
    """The folder to hand the builder: `model_path` when it can read its config.json, else a patched copy."""
    config = json.loads((model_path / CONFIG_FILE).read_text(encoding="utf-8"))
    check_supported(config, model_path)
    patched = normalized_config(config)
    if patched == config:
        return model_path
    folder = scratch_dir / BUILDER_INPUT_DIR
    folder.mkdir(parents=True)
    for entry in model_path.iterdir():
        if entry.name != CONFIG_FILE:
            (folder / entry.name).symlink_to(entry.resolve())
    (folder / CONFIG_FILE).write_text(json.dumps(patched, indent=2) + "\n", encoding="utf-8")
    return folder


def normalized_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with every rewrite applied that the builder needs (a new dict; the same content when none does)."""
    result = copy.deepcopy(config)
    for rewrite in REWRITES:
        rewrite(result)
    return result


def _flatten_rope_per_layer_type(config: dict[str, Any]) -> None:
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or not isinstance(rope.get("full_attention"), dict):
        return
    flat = dict(rope["full_attention"])
    local = rope.get("sliding_attention")
    if isinstance(local, dict) and "rope_theta" in local:
        flat["rope_local_base_freq"] = local["rope_theta"]
    config["rope_parameters"] = flat


def _add_legacy_longrope_type(config: dict[str, Any]) -> None:
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and rope.get("rope_type") == "longrope":
        rope.setdefault("type", "longrope")


REWRITES: tuple[Callable[[dict[str, Any]], None], ...] = (_flatten_rope_per_layer_type, _add_legacy_longrope_type)
