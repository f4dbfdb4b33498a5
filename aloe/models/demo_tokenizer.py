"""A word-level tokenizer for the demo SigLIP teacher, saved so that ``AutoTokenizer`` loads it offline.

Built with the ``tokenizers`` library (WordLevel model) because the demo has no hub access to a
real SigLIP SentencePiece model, and its captions use a few dozen words.

SigLIP's text tower pools the LAST position (``last_hidden_state[:, -1]`` in ``modeling_siglip``)
and zero-shot tokenises with ``padding="max_length"`` and no attention mask. The tokenizer
therefore appends ``[EOS]`` to every text and pads on the LEFT: the pooled position is always the
``[EOS]`` token, whatever the padding mode, and training and zero-shot see the same layout.
Punctuation is stripped by the normaliser, so "a photo of a red star." and the caption
"a photo of a red star" tokenise identically.
"""

from __future__ import annotations

import re
from typing import Iterable

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, EOS)  # ids 0, 1, 2
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
_PUNCT = r"[^\w\s]"


def words_of(texts: Iterable[str]) -> list[str]:
    """Sorted distinct lowercase words of ``texts``, punctuation removed as the normaliser does.
    Template slots (``{}``) vanish with the punctuation."""
    words: set[str] = set()
    for text in texts:
        words.update(re.sub(_PUNCT, " ", text.lower()).split())
    return sorted(words)


def build_word_tokenizer(texts: Iterable[str], max_length: int = 64) -> PreTrainedTokenizerFast:
    """A left-padding, EOS-appending word tokenizer whose vocabulary is the words of ``texts``."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (one word and [EOS]), got {max_length}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words_of(texts):
        vocab.setdefault(word, len(vocab))
    if len(vocab) == len(SPECIAL_TOKENS):
        raise ValueError("cannot build a tokenizer from texts without any word")
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(_PUNCT), " ")])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, EOS_ID)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token=EOS,
        padding_side="left", truncation_side="right", model_max_length=max_length,
    )
