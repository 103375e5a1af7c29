"""Stage 7: the tokenizer: train a GPT-2 style byte-level BPE, a character vocabulary, or reuse
an existing `tokenizer.json` (for example a model dir's)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lmforge.errors import DataError
from lmforge.hf import END_OF_TEXT

UNKNOWN = "<unk>"


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """Byte-level BPE as GPT-2 builds it; `<|endoftext|>` is the one special token."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def train_char(texts: Iterable[str]) -> Tokenizer:
    """One token per character seen in training; unseen characters become `<unk>`."""
    alphabet: set[str] = set()
    for text in texts:
        alphabet.update(text)
    vocab = {END_OF_TEXT: 0, UNKNOWN: 1}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNKNOWN))
    tokenizer.add_special_tokens([END_OF_TEXT])
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def tokenizer_file(path: str | Path) -> Path:
    """A tokenizer.json path from a file or a dir holding one (a dataset or model dir)."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / "tokenizer.json"
    if not candidate.is_file():
        raise DataError(f"no tokenizer at {path}", hint="give a tokenizer.json or a dir with one")
    return candidate


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load and check a tokenizer: it must parse and know `<|endoftext|>`."""
    file = tokenizer_file(path)
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises a bare Exception for bad JSON
        raise DataError(f"{file} is not a valid tokenizer.json: {exc}") from exc
    end_of_text_id(tokenizer, file)
    return tokenizer


def end_of_text_id(tokenizer: Tokenizer, where: str | Path = "tokenizer") -> int:
    token_id = tokenizer.token_to_id(END_OF_TEXT)
    if token_id is None:
        raise DataError(f"{where} has no {END_OF_TEXT} token, which separates documents")
    return token_id
