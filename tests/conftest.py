"""Shared fixtures: the real corpora in ../shared/data and a helper that runs the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def corpus(relative: str) -> Path:
    """A file from ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared corpus {path} is absent (see shared/data/SOURCES.md)")
    return path


@pytest.fixture(autouse=True)
def mlflow_uri_stays_put() -> Iterator[None]:
    """MLflow's `set_tracking_uri` also writes MLFLOW_TRACKING_URI into os.environ, so a test
    that opens a store in-process would point every later test's servers and CLI runs (which
    inherit the environment) at its store. Put the variable back as it was."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def cli_env() -> dict[str, str]:
    return {**os.environ, "LMFORGE_NO_PROGRESS": "1", "COLUMNS": "120"}


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `python -m lmforge ARGS` as a real subprocess (in `env`, default `cli_env()`)."""
    return subprocess.run(
        [sys.executable, "-m", "lmforge", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else cli_env(),
        timeout=timeout,
    )


@pytest.fixture
def ptb_lines() -> list[str]:
    with open(corpus("ptb/ptb.train.txt"), encoding="utf-8") as handle:
        return [line.strip() for _, line in zip(range(3000), handle, strict=False)]


def build_model_dir(
    path: Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 128,
    vocab_size: int = 0,
    seed: int = 0,
    tie_word_embeddings: bool = True,
) -> Path:
    """A GPT-2 model dir with random weights and a small byte-level BPE tokenizer (its
    vocabulary is the model's unless `vocab_size` asks for a larger model vocabulary)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = ["the cat sat on the mat. hello world, café 漢字 naïve résumé"] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text, trainer)
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        vocab_size=vocab_size or tokenizer.get_vocab_size(),
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=tie_word_embeddings,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(path)
    tokenizer.save(str(path / "tokenizer.json"))
    from lmforge.cards import ModelCard

    ModelCard().write(path)  # a model dir lmforge made: every file listed with its sha256
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("tiny-model") / "model")
