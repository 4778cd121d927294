"""Tiny random models (hidden 64, 2 layers) of the GenAI builder's architectures whose config.json transformers 5
writes in a new shape, saved the way transformers 5 saves them."""

from pathlib import Path

from tiny_models import write_tokenizer

# transformers model_type -> config fields beyond the common ones. Gemma 2/3 get one sliding and one global layer
# (window 32, shorter than the test prompts) so that both RoPE caches and the window are exercised.
ARCHITECTURES = {
    "llama": {},
    "mistral": {},
    "phi3": {"original_max_position_embeddings": 256},
    "phi3-longrope": {
        "original_max_position_embeddings": 128,
        "rope_scaling": {"type": "longrope", "short_factor": [1.0 + i / 8 for i in range(8)],
                         "long_factor": [2.0 + i / 4 for i in range(8)]},
    },
    "qwen2": {},
    "qwen3": {"head_dim": 16},
    "gemma": {"head_dim": 16},
    "gemma2": {"head_dim": 16, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]},
    "gemma3_text": {"head_dim": 16, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]},
}


def write_tiny_architecture(folder: Path, name: str, seed: int = 0) -> Path:
    """A random causal LM of architecture `name` (a key of ARCHITECTURES) with its tokenizer, saved in fp32."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder)
    common = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )
    config = AutoConfig.for_model(name.split("-")[0], **common, **ARCHITECTURES[name])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)  # larger than the default init, so logits differ clearly between tokens
    model.save_pretrained(folder)
    return folder
