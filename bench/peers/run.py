"""`make bench-peers`: our engine against the CPU engines users would pick instead (vLLM CPU
offline and through its OpenAI server, OpenVINO GenAI, llama.cpp, CTranslate2) on
bench/engine.py's distilgpt2-shaped model, prompts and output length, one table.

    python bench/peers/run.py [--only ours,vllm,...] [--out bench/peers/out]

Each part runs in its own venv (bench/peers/setup.sh builds them), one after another, never
two at once; its rows are kept in OUT/results/PART.json, and the table is printed from every
part's latest result (a part re-run alone with --only replaces only its own rows; the table
says when each part ran, so ratios across parts measured at different times are visible)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for engine.py

import torch
from engine import NEW, PROMPT, REQUESTS, VOCAB, build_model
from http_peers import lmforge_server, vllm_server
from http_peers import measure as measure_http

from lmforge.cpuinfo import cpu_flags

HERE = Path(__file__).resolve().parent

# (venv under bench/peers/venvs, or None for the project's; the script it runs)
OFFLINE = {
    "ours": (None, "ours.py"),
    "ctranslate2": ("ctranslate2", "ctranslate2_peer.py"),
    "openvino": ("openvino", "openvino_peer.py"),
    "llamacpp": ("llamacpp", "llamacpp_peer.py"),
    "vllm": ("vllm", "vllm_offline.py"),
}
HTTP = ("lmforge-serve", "vllm-serve")
PARTS = (*OFFLINE, *HTTP)
BATCHES = [1, 8, 32]
MAX_MODEL_LEN = 128  # 32 prompt + 64 new tokens, rounded up to a KV block size


def vllm_env(venv: Path) -> dict[str, str]:
    """vLLM's CPU guide: tcmalloc and Intel OpenMP preloaded (where they are installed), a
    small KV-cache space, its default thread binding; usage stats off."""
    preload = [
        *glob.glob("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"),
        *glob.glob(str(venv / "lib" / "libiomp5.so")),
    ]
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the peer's venv must not import our packages
    if preload:
        env["LD_PRELOAD"] = ":".join([*preload, os.environ.get("LD_PRELOAD", "")]).rstrip(":")
    return env


def run_part(part: str, work_file: Path, work: dict[str, Any], out: Path, venvs: Path) -> dict:
    """One part's rows, or its error; always one record with when it ran."""
    started = time.time()
    record: dict[str, Any] = {"part": part, "started": time.strftime("%H:%M:%S", time.gmtime())}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        if part in OFFLINE:
            venv_name, script = OFFLINE[part]
            python = (
                sys.executable if venv_name is None else str(venvs / venv_name / "bin" / "python")
            )
            if not Path(python).exists():
                raise RuntimeError(
                    f"{python} is missing: run bash bench/peers/setup.sh {venv_name}"
                )
            if part == "vllm":
                env = vllm_env(venvs / "vllm")
            if venv_name is not None:
                env.pop("PYTHONPATH", None)  # the peer's venv must not import our packages
            result, log = out / "results" / f"{part}.raw.json", out / f"{part}.log"
            with log.open("wb") as sink:
                done = subprocess.run(
                    [python, str(HERE / script), str(work_file), str(result)],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=1800,
                )
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            if done.returncode != 0:
                print("\n".join(lines[-20:]), file=sys.stderr)
                last = next((line for line in reversed(lines) if line.strip()), "")
                raise RuntimeError(f"exit {done.returncode} ({log}): {last}")
            print("\n".join(line for line in lines if " tok/s" in line), flush=True)
            record |= json.loads(result.read_text(encoding="utf-8"))
        elif part == "lmforge-serve":
            command = lmforge_server(Path(work["model"]), 8300, max(BATCHES))
            record["rows"] = measure_http(part, command, 8300, work, env, out / f"{part}.log")
        else:
            if not (venvs / "vllm" / "bin" / "python").exists():
                raise RuntimeError("the vllm venv is missing: run bash bench/peers/setup.sh vllm")
            command = vllm_server(
                venvs / "vllm", Path(work["model"]), 8301, max(BATCHES), MAX_MODEL_LEN
            )
            env = vllm_env(venvs / "vllm")
            record["rows"] = measure_http(part, command, 8301, work, env, out / f"{part}.log")
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        print(f"{part} FAILED: {record['error']}", file=sys.stderr, flush=True)
    record["seconds"] = time.time() - started
    return record


def matching_prefix(a: list[int] | None, b: list[int] | None) -> str:
    if not a or not b:
        return "-"
    same = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return f"{same}/{len(b)}"


def reference(row: dict) -> str:
    """The lmforge row each peer row is compared with: same mode, same precision class."""
    if row["mode"] == "http":
        return "lmforge-serve"
    return (
        "lmforge int8" if ("int8" in row["system"] or "q8_0" in row["system"]) else "lmforge fp32"
    )


def table(records: list[dict]) -> str:
    rows = [row for record in records for row in record.get("rows", [])]
    by_key = {(r["system"], r["batch"]): r for r in rows}
    fp32_output = next((r["first_output"] for r in rows if r["system"] == "lmforge fp32"), None)
    columns = ("system", "mode", "batch", "tok/s", "lmforge ÷ it", "compared with")
    widths = (24, 7, 5, 8, 12, 14, 13, 16)
    head = " ".join(
        f"{name:<{w}}"
        for name, w in zip((*columns, "greedy = fp32", "TTFT p50/p99 ms"), widths, strict=True)
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        ref = by_key.get((reference(row), row["batch"]))
        rate = row["output_tokens_per_s"]
        cells = (
            row["system"],
            row["mode"],
            str(row["batch"]),
            f"{rate:.1f}",
            f"{ref['output_tokens_per_s'] / rate:.2f}x" if ref else "-",
            reference(row),
            matching_prefix(row.get("first_output"), fp32_output),
            f"{row['ttft_p50_ms']:.0f}/{row['ttft_p99_ms']:.0f}" if "ttft_p50_ms" in row else "-",
        )
        lines.append(" ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=True)))
    for record in records:
        state = f"FAILED: {record['error']}" if "error" in record else record.get("versions", "")
        ran = f"ran at {record['started']} UTC for {record['seconds']:.0f} s"
        lines.append(f"  {record['part']:<14} {ran}  {state}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--venvs", type=Path, default=HERE / "venvs")
    parser.add_argument("--model", type=Path, default=Path("bench/out/engine/distilgpt2-random"))
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each batched measurement; the fastest is kept",
    )
    parser.add_argument("--single-requests", type=int, default=8, help="requests at batch 1")
    args = parser.parse_args()
    parts = args.only.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--only: unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    model = build_model(args.model).resolve()
    generator = torch.Generator().manual_seed(0)
    work = {
        "model": str(model),
        "models_out": str((args.out / "models").resolve()),
        "prompts": torch.randint(0, VOCAB, (REQUESTS, PROMPT), generator=generator).tolist(),
        "new_tokens": NEW,
        "batches": BATCHES,
        "single_requests": args.single_requests,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "max_model_len": MAX_MODEL_LEN,
    }
    work_file = args.out / "workload.json"
    work_file.write_text(json.dumps(work), encoding="utf-8")
    print(cpu_flags())
    print(f"threads: {work['threads']}  load average at start: {os.getloadavg()}", flush=True)
    for part in parts:
        record = run_part(part, work_file, work, args.out, args.venvs)
        (args.out / "results" / f"{part}.json").write_text(
            json.dumps(record, indent=2), encoding="utf-8"
        )
    records = [
        json.loads(path.read_text(encoding="utf-8"))
        for part in PARTS
        if (path := args.out / "results" / f"{part}.json").exists()
    ]
    print(f"\nload average at end: {os.getloadavg()}")
    print(table(records))
    (args.out / "peers.json").write_text(json.dumps(records, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
