"""`hf:NAME[/CONFIG][:SPLIT]` sources through the `datasets` library in streaming mode.

Only used when a user names a hub dataset; never in tests or defaults.
"""

from __future__ import annotations

from collections.abc import Iterator

from lmforge.errors import DataError, MissingDependencyError


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """`hf:wikitext/wikitext-2-raw-v1:train` → ("wikitext", "wikitext-2-raw-v1", "train")."""
    body = spec.removeprefix("hf:")
    body, _, split = body.partition(":")
    parts = body.split("/")
    if not body or len(parts) > 3 or not all(parts):
        raise DataError(f"bad hub source {spec!r}", hint="use hf:NAME[/CONFIG][:SPLIT]")
    # Hub names may carry an owner ("owner/name"); a third part is the config.
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}", parts[2], split or "train"
    if len(parts) == 2:
        return parts[0], parts[1], split or "train"
    return parts[0], None, split or "train"


def hf_texts(spec: str, text_field: str) -> Iterator[tuple[str, str]]:
    name, config, split = parse_hf_spec(spec)
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("hf: sources", "datasets", "hf") from None
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as exc:  # the hub client raises many types; name the source either way
        raise DataError(f"cannot load {spec}: {exc}") from exc
    for index, record in enumerate(stream):
        value = record.get(text_field)
        if not isinstance(value, str):
            raise DataError(f"{spec}#{index}: no text field {text_field!r}", hint="--text-field")
        if value.strip():
            yield f"{spec}#{index}", value
