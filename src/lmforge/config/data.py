"""Options of the `data` verbs."""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import option


def _encoding_problems(encoding: str) -> list[str]:
    """Inputs are split into lines on the byte 10, so the encoding must keep ASCII as is."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        return [f"encoding: {encoding!r} is not a known text encoding"]
    if b"\n a".decode(encoding, "replace") != "\n a":
        return [f"encoding: {encoding!r} is not ASCII-compatible (UTF-16/32 are not supported)"]
    return []


def _known_phone_region(region: str) -> bool:
    from phonenumbers import SUPPORTED_REGIONS

    return region in SUPPORTED_REGIONS


@dataclass
class PrepareConfig:
    """Options of `lmforge data prepare`."""

    inputs: list[str] = option(
        [],
        "Sources: files, directories or globs (.txt .jsonl .json .csv .tsv .parquet, optionally "
        ".gz), hf:NAME[/CONFIG][:SPLIT], or builtin:python-docs.",
    )
    valid_inputs: list[str] = option(
        [],
        "Sources whose documents all go to the valid split; with this or --test-inputs, "
        "INPUTS all go to train instead of splitting by hash (e.g. PTB's own splits).",
    )
    test_inputs: list[str] = option([], "Sources whose documents all go to the test split.")
    output: str = option("", "Dataset dir to create.")
    force: bool = option(False, "Replace an existing dataset at --output.")
    txt_mode: str = option(
        "line",
        "How .txt files split into documents: one per line, or one per blank-line block.",
        choices=("line", "paragraph"),
    )
    text_field: str = option("text", "Field holding the text in .jsonl/.json/hf: records.")
    text_column: str = option("text", "Column holding the text in .csv/.tsv/.parquet files.")
    strict: bool = option(False, "Fail on the first malformed record instead of skipping it.")
    encoding: str = option(
        "utf-8",
        "Text encoding of the input files (e.g. latin-1, cp1252); bytes that do not decode are "
        "replaced with U+FFFD, counted in the manifest and reported with the first file:line.",
    )
    strip_markup: bool = option(
        False, "Strip HTML tags/entities and wiki headings/templates while normalizing."
    )
    min_chars: int = option(16, "Drop documents shorter than this many characters.", ge=0)
    max_chars: int = option(1_000_000, "Drop documents longer than this many characters.")
    min_alpha_fraction: float = option(
        0.4,
        "Drop documents whose non-space characters are less than this fraction letters.",
        ge=0,
        le=1,
    )
    max_repeated_line_fraction: float = option(
        0.3,
        "Drop documents where more than this fraction of lines repeat an earlier line.",
        ge=0,
        le=1,
    )
    dedup: str = option(
        "exact+near",
        "Deduplication: none, exact (content hash), or exact+near (MinHash LSH).",
        choices=("none", "exact", "exact+near"),
    )
    near_dup_threshold: float = option(
        0.8,
        "Estimated Jaccard similarity of word shingles at which a document is a near-copy.",
        gt=0,
        le=1,
    )
    shingle_words: int = option(5, "Words per shingle for near-duplicate detection.", ge=1)
    minhash_perm: int = option(128, "MinHash permutations (more: more accurate, slower).", ge=16)
    pii: bool = option(
        True, "Redact e-mails, phones, IPs, card numbers, IBANs and secrets to typed placeholders."
    )
    pii_phone_region: str = option(
        "US",
        "Country (ISO 3166 code) whose national layout is assumed for phone numbers written "
        "without a country code; international numbers are found whatever it is.",
    )
    sample: str = option(
        "random",
        "Sampling: 'random' keeps --sample-fraction of documents chosen by hash; "
        "'representative:K' clusters into K groups and keeps those nearest each centroid.",
    )
    sample_fraction: float = option(1.0, "Fraction of documents to keep when sampling.", gt=0, le=1)
    split: list[float] = option([0.98, 0.01, 0.01], "Train,valid,test fractions (sum to 1).")
    tokenizer: str = option(
        "", "Reuse this tokenizer (a tokenizer.json or a dir holding one) instead of training."
    )
    char_level: bool = option(False, "Train a character-level vocabulary instead of BPE.")
    vocab_size: int = option(8192, "BPE vocabulary size, including <|endoftext|>.")
    min_frequency: int = option(2, "BPE: minimum count for a merge.")
    tokenizer_max_chars: int = option(
        500_000_000,
        "Train the tokenizer on at most this many characters of the train split.",
        gt=0,
    )
    seed: int = option(1234, "Seed for hashing, sampling and MinHash permutations.")
    workers: int = option(
        0,
        "Processes for the cleaning stages, threads for tokenizer training and encoding "
        "(0 = all cores); the output does not depend on it.",
        ge=0,
    )
    engine: str = option(
        "local",
        "Where the stages run: local (a process pool on this machine) or ray (Ray tasks on "
        "the cluster at --ray-address or RAY_ADDRESS, else a local Ray); same output.",
        choices=("local", "ray"),
    )
    ray_address: str = option("", "Ray cluster address for --engine ray (default: RAY_ADDRESS).")
    block_docs: int = option(
        2048,
        "Documents per block of work: the unit spread over the workers, and what an "
        "interrupted run resumes from (finished blocks wait beside --output).",
        ge=1,
    )
    canaries: int = option(
        0,
        "Insert this many random secret-shaped sequences into the train split (recorded in the "
        "manifest) so that `lmforge eval` can measure memorization (canary exposure).",
        ge=0,
    )
    canary_repeats: int = option(1, "Times each canary is inserted.", ge=1)

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.inputs:
            out.append("inputs: give at least one INPUT (a file, dir, glob, hf: or builtin:)")
        if not self.output:
            out.append("output: --output DIR is required")
        if self.max_chars < max(self.min_chars, 1):
            out.append(f"max_chars: {self.max_chars} is below min_chars {self.min_chars}")
        out += _encoding_problems(self.encoding)
        if not _known_phone_region(self.pii_phone_region):
            out.append(f"pii_phone_region: {self.pii_phone_region!r} is not a region code like US")
        if len(self.split) != 3 or any(x < 0 for x in self.split):
            out.append(f"split: {self.split} must be three non-negative fractions train,valid,test")
        elif abs(sum(self.split) - 1.0) > 1e-6:
            out.append(f"split: {self.split} sums to {sum(self.split):g}, not 1")
        elif self.split[0] == 0:
            out.append("split: the train fraction must be above 0")
        elif self.fixed_splits and self.split != [0.98, 0.01, 0.01]:
            out.append("split: cannot be combined with --valid-inputs/--test-inputs")
        given = [*self.inputs, *self.valid_inputs, *self.test_inputs]
        if twice := sorted({s for s in given if given.count(s) > 1}):
            out.append(f"inputs: {', '.join(twice)} given more than once")
        if self.sample != "random":
            _, _, k = self.sample.partition(":")
            if not self.sample.startswith("representative:") or not k.isdigit() or int(k) < 1:
                out.append(f"sample: {self.sample!r} is not 'random' or 'representative:K'")
            elif self.sample_fraction >= 1.0:
                out.append("sample: representative sampling needs --sample-fraction below 1")
        if self.tokenizer and self.char_level:
            out.append("char_level: cannot be combined with --tokenizer")
        if not self.tokenizer and not self.char_level and self.vocab_size < 257:
            out.append(
                f"vocab_size: {self.vocab_size} is too small for the 256-symbol byte alphabet "
                "plus <|endoftext|>; use at least 257"
            )
        return out

    @property
    def fixed_splits(self) -> dict[str, str]:
        """Split per source when sources fix the splits (empty: split by document hash)."""
        if not (self.valid_inputs or self.test_inputs):
            return {}
        fixed = dict.fromkeys(self.inputs, "train")
        fixed.update(dict.fromkeys(self.valid_inputs, "valid"))
        fixed.update(dict.fromkeys(self.test_inputs, "test"))
        return fixed

    @property
    def representative_clusters(self) -> int:
        return int(self.sample.partition(":")[2]) if self.sample != "random" else 0


@dataclass
class InspectConfig:
    """Options of `lmforge data inspect`."""

    dataset: str = option("", "Dataset dir to inspect.")
    samples: int = option(3, "Decoded documents to show from the train split.", ge=0)
    sample_chars: int = option(300, "Show at most this many characters of each sample.", gt=0)
    split: str = option(
        "train", "Split to draw the samples from.", choices=("train", "valid", "test")
    )

    def problems(self) -> list[str]:
        return [] if self.dataset else ["dataset: DATASET_DIR is required"]
