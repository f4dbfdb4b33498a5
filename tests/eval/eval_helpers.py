"""Test helpers for the evaluation tests: tiny random teachers saved with save_pretrained."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = "a photo of the red green blue yellow circle square triangle star . bad".split()


def save_tiny_teacher(directory: Path, family: str = "dinov3", seed: int = 0) -> Path:
    import transformers as T

    torch.manual_seed(seed)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  image_size=32, patch_size=8)
    if family == "dinov3":
        model = T.DINOv3ViTModel(T.DINOv3ViTConfig(**common, num_register_tokens=2))
    elif family == "vit":
        model = T.ViTModel(T.ViTConfig(**common), add_pooling_layer=False)
    else:
        text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    vocab_size=len(WORDS) + 2, max_position_embeddings=64)
        model = T.SiglipModel(T.SiglipConfig(text_config=text, vision_config=common))
        tiny_word_tokenizer().save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


def tiny_word_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
