# The README's two commands are `make quickstart` and `make test`; the rest are for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-unit lint format bench-data bench-train bench-eval bench-engine bench-serve bench-hostile bench-tasks bench-peers bench-prefix clean

# torch first, pinned: that exact version is a local CPU build; a looser spec (or letting
# another package pull torch in) downloads a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The whole life of a model on the built-in corpus, then serving it until Ctrl-C.
quickstart: install
	$(BIN)/lmforge quickstart

test: install
	$(BIN)/python -m pytest -m "not gpu"

test-unit: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench-data: install
	$(BIN)/python bench/data_prepare.py

bench-train: install
	bash bench/train_ptb.sh bench/out

# The full evaluation suite on bench-train's teacher and distilled student.
bench-eval: install
	bash bench/eval_ptb.sh bench/out

# Our engine against transformers generate and CTranslate2 (installed here, only for this).
# --ppl-model: the PTB teacher from bench-train, for the int8 perplexity change.
bench-engine: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/engine.py $(if $(wildcard bench/out/teacher),--ppl-model bench/out/teacher)

# lmforge bench against lmforge serve and the naive reference server, same model and load.
bench-serve: install
	bash bench/serve.sh bench/out

# The prefix cache (issue 18) off and on, one real lmforge serve each: zero-shot classify calls
# per second with 10 labels, and time to first token behind a 500-token prefix seen before.
bench-prefix: install
	$(BIN)/python bench/prefix.py

# Each attack of issue 17 against a real lmforge serve (a tiny model it trains first) while
# normal requests run: the answer, the normal p99 against its baseline, requests lost.
bench-hostile: install
	$(BIN)/python bench/hostile.py

# The five task pipelines (configs/tasks/) against scikit-learn baselines on the same files,
# scored by eval and through the HTTP routes: one table (and bench/out/tasks/tasks.json).
bench-tasks: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/tasks.py --json bench/out/tasks/tasks.json

# Opt-in, never in CI or `make test`: builds one venv per peer engine under bench/peers/venvs/
# (about 25 min and 6 GB the first time; see bench/peers/README.md), then our engine, vLLM CPU
# (offline and its OpenAI server), OpenVINO GenAI, llama.cpp and CTranslate2 on one model, one
# after another, in one table.
bench-peers: install
	-bash bench/peers/setup.sh  # a peer that fails to install shows as FAILED in the table
	$(BIN)/python bench/peers/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
