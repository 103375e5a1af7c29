"""GPT-2 models: size presets for new models, loading a model dir to fine-tune, and the
tokenizer wrapper that model dirs carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, ModelError
from lmforge.modelio import looks_like_path, verify_model_dir

END_OF_TEXT = "<|endoftext|>"
# (layers, hidden, heads, context): distilgpt2 and gpt2 are the real GPT-2 shapes.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 64, 2, 128),
    "small": (4, 256, 4, 128),
    "medium": (6, 384, 6, 256),
    "distilgpt2": (6, 768, 12, 1024),
    "gpt2": (12, 768, 12, 1024),
}


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
):  # -> transformers.GPT2Config
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


def wrap_tokenizer(tokenizer_json: Path):  # -> transformers.PreTrainedTokenizerFast
    """A transformers tokenizer over a dataset's tokenizer.json, with GPT-2's special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json),
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
    )


def load_pretrained(ref: str, kind: str = "causal-lm") -> tuple[Any, Any, dict | None]:
    """(model, tokenizer, card) from a model dir (verified), a registry reference
    (`models:/NAME@ALIAS`, pulled and verified), or a hub name the user gave. `kind` "auto"
    loads a fine-tuned classifier as one and anything else as a causal LM."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        GPT2ForSequenceClassification,
    )

    from lmforge.registry.refs import is_registry_ref

    if is_registry_ref(ref):
        from lmforge.registry.pull import pull

        ref = str(pull(ref)[0])
    card = None
    path = Path(ref)
    if path.is_dir():
        card = verify_model_dir(path)
    elif looks_like_path(ref):
        raise ModelError(f"model dir {ref} does not exist")
    try:
        if kind == "auto":
            architectures = AutoConfig.from_pretrained(ref).architectures or []
            classifier = "GPT2ForSequenceClassification" in architectures
            kind = "classification" if classifier else kind
        loader = GPT2ForSequenceClassification if kind == "classification" else AutoModelForCausalLM
        model = loader.from_pretrained(ref, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {ref}: {exc}") from exc
    if getattr(model.config, "model_type", "") != "gpt2":
        raise ModelError(f"{ref} is a {model.config.model_type} model; lmforge trains GPT-2 models")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, card


def lineage_of(ref: str, card: dict | None) -> dict[str, Any]:
    """How a model dir names the model it started from (its weights' hash and MLflow run)."""
    card = card or {}
    return {
        "model": ref,
        "model_sha256": card.get("files", {}).get("model.safetensors"),
        "mlflow_run_id": card.get("mlflow_run_id"),
    }


def check_same_vocabulary(model_tokenizer: Any, dataset_tokenizer: Any, where: str) -> None:
    """A model can only train on token ids from the tokenizer it was built with."""
    if model_tokenizer.get_vocab() != dataset_tokenizer.get_vocab():
        raise ModelError(
            f"tokenizer mismatch: the dataset {where} was encoded with a different tokenizer "
            "than the model's",
            hint="prepare the data with --tokenizer MODEL_DIR so both share one vocabulary",
        )
