"""Text conditioning of the embedded diffusion model: a word-level tokenizer and two text encoders.

The world's captions use a few hundred words, so the vocabulary is the training captions' words (a BPE
vocabulary would need a large corpus). Words a prompt has that the captions never had are dropped and
*counted*, never guessed. Two encoders turn token ids into conditioning:

- ``clip``: a small `transformers.CLIPTextModel` built from a config (Stable Diffusion's interface: token states
  for cross-attention, their masked mean as a pooled vector);
- ``pool`` (`WordPool`): a weighted bag of words — every vocabulary word has an embedding and a learned
  importance; a text's vector is the importance-softmax-weighted mean of its known words' embeddings, through an
  MLP. Global conditioning of this kind (added to the time embedding) is what small conditional models learn
  quickly, and the learned importance lets the emotion, gender, age and race words outweigh the filler of a long
  prompt whose other words the captions never used (`models/diffusion/README.md`: measured).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, UNK)
_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


class EmbeddedModelError(ValueError):
    """Bad input to the embedded model (unknown checkpoint format, wrong AU columns, …)."""


# --- tokenizer --------------------------------------------------------------------------------
def caption_words(text: str) -> list[str]:
    """Lower-case words (hyphenated words kept whole: 'middle-aged', 'salt-and-pepper')."""
    return _WORD.findall(str(text).lower())


def build_vocab(captions: Sequence[str], min_count: int = 1) -> list[str]:
    """Special tokens, then every caption word seen at least `min_count` times, sorted (deterministic)."""
    counts: dict[str, int] = {}
    for c in captions:
        for w in caption_words(c):
            counts[w] = counts.get(w, 0) + 1
    return list(SPECIALS) + sorted(w for w, n in counts.items() if n >= min_count)


class WordTokenizer:
    """Word-level tokenizer over a fixed vocabulary. Unknown words are dropped and counted, not guessed."""

    def __init__(self, vocab: Sequence[str], max_length: int):
        if list(vocab[:4]) != list(SPECIALS):
            raise EmbeddedModelError(f"vocabulary must start with {SPECIALS}; got {list(vocab[:4])}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = int(max_length)

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(input_ids (B,L), attention_mask (B,L), unknown-word counts). Raises if a text is too long."""
        ids = np.zeros((len(texts), self.max_length), dtype=np.int64)
        mask = np.zeros_like(ids)
        unknown = []
        for i, t in enumerate(texts):
            words = caption_words(t)
            known = [self.index[w] for w in words if w in self.index]
            unknown.append(len(words) - len(known))
            seq = [self.index[BOS], *known, self.index[EOS]]
            if len(seq) > self.max_length:
                raise EmbeddedModelError(f"text has {len(seq)} known tokens > max_length {self.max_length} "
                                         f"(never truncated): {t!r}")
            ids[i, :len(seq)] = seq
            mask[i, :len(seq)] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask), unknown


# The grid's "{age} {gender}" phrase in the words the world's captions use for the same people. A
# pretrained CLIP knows that "adult male" ~ "man"; a word-level encoder trained on captions cannot, so
# the embedded backend rewrites these pairs (visibly: the manifest's `encoder_text` column).
AGE_GENDER_WORDS: dict[tuple[str, str], str] = {
    ("child", "male"): "boy", ("child", "female"): "girl", ("young", "male"): "young man",
    ("young", "female"): "young woman", ("adult", "male"): "man", ("adult", "female"): "woman",
    ("middle-aged", "male"): "middle-aged man", ("middle-aged", "female"): "middle-aged woman",
    ("old", "male"): "old man", ("old", "female"): "old woman"}
_AGE_GENDER = re.compile(r"\b(child|young|adult|middle-aged|old) (male|female)\b")


def adapt_prompt(text: str) -> str:
    """Rewrite '{age} {gender}' pairs of a grid prompt into caption words ('old female' -> 'old woman')."""
    return _AGE_GENDER.sub(lambda m: AGE_GENDER_WORDS[(m.group(1), m.group(2))], text)


class WordPool(nn.Module):
    """Weighted bag of words: softmax(importance) over a text's known tokens weights their embeddings; an MLP
    follows. The empty text (only [BOS]/[EOS]/[PAD]) maps to exactly zero: the unconditional input."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.importance = nn.Embedding(vocab_size, 1)
        nn.init.normal_(self.embedding.weight, std=0.5)
        nn.init.zeros_(self.importance.weight)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        words = (attention_mask > 0) & (input_ids >= len(SPECIALS))  # specials carry no meaning here
        score = self.importance(input_ids)[..., 0].masked_fill(~words, float("-inf"))
        any_word = words.any(1, keepdim=True)
        weights = torch.softmax(torch.where(any_word, score, torch.zeros_like(score)), dim=1) * words
        pooled = (weights[..., None] * self.embedding(input_ids)).sum(1)
        return self.mlp(pooled) * any_word.to(pooled.dtype)
