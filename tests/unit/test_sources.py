from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lmforge.data.sources import Reader, ReadOptions
from lmforge.errors import DataError
from tests.conftest import corpus


def texts(specs: list[str], **options: object) -> tuple[list[str], Reader]:
    reader = Reader(specs, ReadOptions(**options))  # type: ignore[arg-type]
    return [doc.text for doc in reader.documents()], reader


def test_txt_lines_and_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one\ntwo\n\nthree\nfour\n\n\nfive\n", encoding="utf-8")
    assert texts([str(path)])[0] == ["one", "two", "three", "four", "five"]
    assert texts([str(path)], txt_mode="paragraph")[0] == ["one\ntwo", "three\nfour", "five"]


def test_gz_dir_and_glob(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with gzip.open(tmp_path / "sub" / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "zipped"}) + "\n")
    (tmp_path / "a.txt").write_text("plain\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored: unknown type in a dir walk\n")
    found, reader = texts([str(tmp_path)])
    assert found == ["plain", "zipped"]
    assert [s["format"] for s in reader.manifest_sources()] == ["txt", "jsonl.gz"]
    assert texts([str(tmp_path / "**" / "*.gz")])[0] == ["zipped"]


def test_undecodable_bytes_are_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe bytes\n")
    found, reader = texts([str(path)])
    assert found == ["good line", "bad \ufffd\ufffd bytes"]
    assert reader.stats.details["undecodable_bytes_replaced"] == 2


def test_latin1_corpus_is_reported_with_count_and_first_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("plain ascii\ncaf\xe9 na\xefve\nr\xe9sum\xe9\n".encode("latin-1"))
    with caplog.at_level("WARNING", logger="lmforge.data"):
        found, reader = texts([str(path)])
    assert found[1] == "caf\ufffd na\ufffdve"
    assert reader.stats.details["undecodable_bytes_replaced"] == 4
    (record,) = [r for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert "4 byte sequence(s)" in record.getMessage()
    assert f"{path}:2" in record.getMessage() and "--encoding" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="lmforge.data"):
        found, reader = texts([str(path)], encoding="latin-1")
    assert found == ["plain ascii", "café naïve", "résumé"]
    assert reader.stats.details["undecodable_bytes_replaced"] == 0
    assert not [r for r in caplog.records if "U+FFFD" in r.getMessage()]


def test_encoding_option_is_checked() -> None:
    from lmforge.config.data import PrepareConfig

    def problems(encoding: str) -> list[str]:
        cfg = PrepareConfig(inputs=["x"], output="o", encoding=encoding)
        return [p for p in cfg.problems() if p.startswith("encoding")]

    assert problems("latin-1") == [] and problems("utf-8-sig") == []
    assert "not a known text encoding" in problems("klingon")[0]
    assert "not ASCII-compatible" in problems("utf-16")[0]
    cfg = PrepareConfig(inputs=["x"], output="o", pii_phone_region="XX")
    assert any(p.startswith("pii_phone_region") for p in cfg.problems())


def test_jsonl_bad_records_are_skipped_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n{"body": "x"}\n["list"]\n{"text": "fine"}\n')
    found, reader = texts([str(path)])
    assert found == ["ok", "fine"]
    assert reader.stats.removed == {"invalid_json": 1, "missing_field": 1, "not_an_object": 1}
    assert reader.stats.examples["invalid_json"][0].startswith(f"{path}:2: not JSON")
    with pytest.raises(DataError, match=r"r\.jsonl:2: not JSON"):
        texts([str(path)], strict=True)


def test_json_array_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"body": "a"}, {"body": "b"}]))
    assert texts([str(path)], text_field="body")[0] == ["a", "b"]
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        texts([str(tmp_path / "broken.json")])


def test_real_tsv_and_csv() -> None:
    sst2, _ = texts([str(corpus("sst2/dev_from_train.tsv"))], text_column="sentence")
    assert len(sst2) == 6735
    stsb = corpus("stsb/sts-dev.csv")
    with pytest.raises(DataError, match="no column 'text'") as info:
        texts([str(stsb)])
    assert "--text-column" in info.value.one_line()


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["alpha", "beta", None]}), tmp_path / "t.parquet")
    assert texts([str(tmp_path / "t.parquet")], text_column="content")[0] == ["alpha", "beta"]


def test_builtin_corpus_is_real_english() -> None:
    reader = Reader(["builtin:python-docs"], ReadOptions())
    docs = reader.documents()
    first = [next(docs) for _ in range(50)]
    assert all(d.origin.startswith("pydoc:") for d in first)
    assert sum(len(d.text) for d in first) > 20000


def test_missing_inputs_and_unknown_types(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="input not found"):
        Reader([str(tmp_path / "nope.txt")], ReadOptions())
    with pytest.raises(DataError, match="no files match"):
        Reader([str(tmp_path / "*.jsonl")], ReadOptions())
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(DataError, match="unknown file type"):
        Reader([str(tmp_path / "x.docx")], ReadOptions())
    with pytest.raises(DataError, match="unknown built-in corpus"):
        Reader(["builtin:nope"], ReadOptions())


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    data = gzip.compress(b"line one\n" * 2000)
    (tmp_path / "t.txt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        texts([str(tmp_path / "t.txt.gz")])
