"""Tiny random Hugging Face models (hidden 64, 2 layers) with a real byte-level BPE tokenizer, built in seconds."""

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "What's a must-see in Paris? The Eiffel Tower and the Louvre.",
    "Best way to get around Tokyo? Take the train, walk, or ride a bike.",
    "I'm thrilled to start my new job! The tone is joy.",
    "This haunted house is terrifying! The tone is fear.",
] * 20


def write_tokenizer(folder: Path, vocab_size: int = 320) -> int:
    """Train a byte-level BPE tokenizer, save it as a fast HF tokenizer; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return len(fast)


def write_tiny_model(folder: Path, architecture: str = "llama", seed: int = 0) -> Path:
    """A random causal LM of the given architecture ('llama' or 'phi3') with its tokenizer, saved in fp32."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder)
    common = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )
    if architecture == "llama":
        config = LlamaConfig(**common)
    elif architecture == "phi3":
        # Equal lengths keep the builder off the LongRoPE path.
        config = Phi3Config(**common, original_max_position_embeddings=256)
    else:
        raise ValueError(architecture)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)  # larger than the default init, so logits differ clearly between tokens
    model.save_pretrained(folder)
    return folder


def write_tiny_bert(folder: Path, num_labels: int = 2, seed: int = 0) -> Path:
    """A random BertForSequenceClassification (hidden 64, 2 layers) with the byte-level tokenizer, saved in fp32."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder)
    config = BertConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, num_labels=num_labels, pad_token_id=0)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:  # layer norms keep their unit scale, so that the rows' differences carry through
                parameter.normal_(0, 0.3)
    model.save_pretrained(folder)
    return folder


def write_tiny_decoder(folder: Path, model_type: str, seed: int = 0, **config) -> Path:
    """A random causal LM of transformers `model_type` with its tokenizer, saved in fp32: 2 layers, 4 heads over 2 KV
    heads, hidden 96 and intermediate 192 unless `config` says otherwise (96 = 12 * 8 and its head size 24 = 12 * 2:
    neither a power of two)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder)
    settings = dict(
        vocab_size=vocab, hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **(settings | config)))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):  # norms near one but not one, so that fusing them is exercised
                parameter.uniform_(0.5, 1.5)
            else:
                parameter.normal_(0, 0.2)
    model.save_pretrained(folder)
    return folder
