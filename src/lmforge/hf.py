"""Hugging Face models and tokenizers: GPT-2 size presets, new model configs, loading a model
dir (verified) or an `hf:` hub name, the tokenizer wrapper that model dirs carry, and the constants
every layer shares. A core module: `transformers` is imported inside the functions, so importing
this module stays light (`lmforge --help` never loads torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lmforge.errors import ConfigError, ModelError
from lmforge.modelio import verify_model_dir

if TYPE_CHECKING:
    from transformers import GPT2Config, PreTrainedTokenizerFast

    from lmforge.cards import ModelCard

END_OF_TEXT = "<|endoftext|>"
# The label id that Hugging Face losses (and ours) skip: padding and unscored prompt tokens.
IGNORE = -100
# (layers, hidden, heads, context): distilgpt2 and gpt2 are the real GPT-2 shapes.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 64, 2, 128),
    "small": (4, 256, 4, 128),
    "medium": (6, 384, 6, 256),
    "distilgpt2": (6, 768, 12, 1024),
    "gpt2": (12, 768, 12, 1024),
}
ModelKind = Literal["causal-lm", "classification", "auto"]


def new_model_config(
    preset: str,
    vocab_size: int,
    end_of_text_id: int,
    *,
    n_layer: int = 0,
    n_embd: int = 0,
    n_head: int = 0,
    context_length: int = 0,
    dropout: float = 0.1,
) -> GPT2Config:
    """A GPT-2 config from a size preset; nonzero arguments override the preset's shape."""
    from transformers import GPT2Config

    layers, hidden, heads, context = PRESETS[preset]
    n_embd, n_head = n_embd or hidden, n_head or heads
    if n_embd % n_head:
        raise ConfigError(f"n_head: {n_head} does not divide n_embd {n_embd}")
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=context_length or context,
        n_embd=n_embd,
        n_layer=n_layer or layers,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=end_of_text_id,
        eos_token_id=end_of_text_id,
        pad_token_id=end_of_text_id,
        tie_word_embeddings=True,
    )


def wrap_tokenizer(tokenizer_json: Path) -> PreTrainedTokenizerFast:
    """A transformers tokenizer over a dataset's tokenizer.json, with GPT-2's special tokens."""
    from transformers import PreTrainedTokenizerFast

    # transformers leaves the fast tokenizer's constructor unannotated.
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_file=str(tokenizer_json),
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
    )


def load_pretrained(
    location: str, kind: ModelKind = "causal-lm", *, hub: bool = False, unverified: bool = False
) -> tuple[Any, Any, ModelCard | None]:
    """(model, tokenizer, card) from a local model dir (verified first; `unverified` lets a dir
    without a card load) or, with `hub`, the Hugging Face hub model the user named with `hf:`.
    A reference is resolved before this (`registry.resolve.open_model`). A local dir never
    reaches the network (`local_files_only`). `kind` "auto" loads a fine-tuned classifier as
    one and anything else as a causal LM. The model and tokenizer are transformers classes,
    typed Any: their stubs are partial."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        GPT2ForSequenceClassification,
    )

    card = None if hub else verify_model_dir(Path(location), unverified=unverified)
    local = {"local_files_only": not hub}
    try:
        if kind == "auto":
            architectures = AutoConfig.from_pretrained(location, **local).architectures or []
            classifier = "GPT2ForSequenceClassification" in architectures
            kind = "classification" if classifier else kind
        loader: Any = (
            GPT2ForSequenceClassification if kind == "classification" else AutoModelForCausalLM
        )
        model = loader.from_pretrained(location, use_safetensors=True, **local)
        tokenizer = AutoTokenizer.from_pretrained(location, **local)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {location}: {exc}") from exc
    if getattr(model.config, "model_type", "") != "gpt2":
        raise ModelError(
            f"{location} is a {model.config.model_type} model; lmforge trains GPT-2 models"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, card


def check_same_vocabulary(model_tokenizer: Any, dataset_tokenizer: Any, where: str) -> None:
    """A model can only train on token ids from the tokenizer it was built with."""
    if model_tokenizer.get_vocab() != dataset_tokenizer.get_vocab():
        raise ModelError(
            f"tokenizer mismatch: the dataset {where} was encoded with a different tokenizer "
            "than the model's",
            hint="prepare the data with --tokenizer MODEL_DIR so both share one vocabulary",
        )
