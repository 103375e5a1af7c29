"""`make bench-tasks`: the five task pipelines (configs/tasks/) against scikit-learn baselines,
in one run, as one table. Per task: the baseline on the same files (bench/tasks_baselines.py),
the pipeline (`lmforge pipeline run configs/tasks/NAME.yaml --no-serve`), its model scored by
`eval` (the pipeline's report) AND through the HTTP route of a real `lmforge serve`
(bench/tasks_route.py), whether the two agree, the goal, and seconds (fine-tuning, task).

    python bench/tasks.py                       # all five, the configs' full recipes
    python bench/tasks.py --tasks sst2,mrpc --baselines-only
    python bench/tasks.py --set model_size=tiny --set lm_minutes=1 --set ft_minutes=1

Baselines measured on the shared 2-core machine (loaded by 7 jobs), on the pipelines' files:
SST-2 TF-IDF 1-2-grams + LR 0.836 on the 1,000 held-out whole sentences and 0.909 on the leaky
dev_from_train; AG News 0.874; MRPC TF-IDF cosine F1 0.812; STS-B TF-IDF cosine Spearman
0.689; XSum Lead-1 ROUGE-L 10.8 on the 100 dev documents. The pipelines were run only at a tiny size
there (`--limit 60 --holdout 5 --set model_size=tiny ...`; eval and route agreed), and SST-2
fine-tuning trials of 4.5 minutes (configs/tasks/sst2.yaml's comments); a full run is five
pipelines of ~20 minutes of pre-training and 25 of fine-tuning each.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tasks_baselines as baselines
import tasks_route as route

from lmforge.cpuinfo import cpu_flags
from lmforge.pipeline.taskdata import prepare

ROOT = Path(__file__).resolve().parents[1]
Row = dict[str, Any]


@dataclass(frozen=True)
class Task:
    metric: str
    goal: str  # what the issue asks, in words
    floor: float | None = None  # an absolute goal, when the issue gives one


TASKS = {
    "sst2": Task("accuracy", ">= 0.85 on unseen whole sentences, > TF-IDF+LR", 0.85),
    "agnews": Task("accuracy", "> TF-IDF+LR"),
    "mrpc": Task("f1", ">= 0.84, > TF-IDF cosine", 0.84),
    "stsb": Task("spearman", "> TF-IDF cosine"),
    "xsum": Task("rougeL", "reported against Lead-1"),
}


def run_baselines(task: str, data: Path) -> dict[str, tuple[str, dict[str, float]]]:
    """{eval task name: (baseline name, metrics)} on the task's prepared files."""
    if task == "sst2":
        scored = baselines.tfidf_logreg(
            data / "train.tsv", {"sst2": data / "dev.tsv", "sst2-leaky": data / "dev_leaky.tsv"}
        )
        return {name: ("TF-IDF+LR", metrics) for name, metrics in scored.items()}
    if task == "agnews":
        scored = baselines.tfidf_logreg(data / "train.tsv", {"agnews": data / "dev.tsv"})
        return {"agnews": ("TF-IDF+LR", scored["agnews"])}
    if task in ("mrpc", "stsb"):
        target = "label" if task == "mrpc" else "score"
        pairs = baselines.tfidf_cosine(data / "train.tsv", data / "dev.tsv", target)
        return {task: ("TF-IDF cosine", pairs)}
    return {"xsum": ("Lead-1", baselines.lead_1_rouge(data / "dev.jsonl"))}


def run_pipeline(task: str, home: Path, overrides: list[str]) -> tuple[float | None, str]:
    """The task's pipeline without serving; (fine-tuning seconds, its output)."""
    config = ROOT / "configs" / "tasks" / f"{task}.yaml"
    known = set(yaml.safe_load(config.read_text(encoding="utf-8"))["vars"])
    sets = [f"home={home}"] + [o for o in overrides if o.partition("=")[0] in known]
    command = [sys.executable, "-m", "lmforge", "pipeline", "run", str(config), "--no-serve"]
    for item in sets:
        command += ["--set", item]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pipeline {task} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    seconds = re.search(r"finetune: done in ([0-9.]+) s", done.stdout)
    return (float(seconds.group(1)) if seconds else None), done.stdout


def score_route(task: str, home: Path) -> dict[str, float]:
    data = home / "data"
    with route.serving(home / "model", home / "serve.log") as url:
        if task in ("sst2", "agnews"):
            return route.classify(url, data / "dev.tsv")
        if task in ("mrpc", "stsb"):
            return route.match(url, data / "dev.tsv", "label" if task == "mrpc" else "score")
        return route.summarize(url, data / "dev.jsonl")


def bench_task(task: str, args: argparse.Namespace) -> list[Row]:
    started = time.monotonic()
    home = args.home / task
    data = home / "data"
    prepare(task, args.data_root, data, seed=args.seed, limit=args.limit, holdout=args.holdout)
    scored = run_baselines(task, data)
    finetune_s, report, routed = None, {}, {}
    if not args.baselines_only:
        finetune_s, _ = run_pipeline(task, home, args.set)
        report = json.loads((home / "report" / "report.json").read_text(encoding="utf-8"))
        routed = score_route(task, home)
    spec, rows = TASKS[task], []
    for name, (baseline, metrics) in scored.items():
        ours = report.get("tasks", {}).get(name, {}).get(spec.metric) if report else None
        # The route scores the dev file; the leaky SST-2 file only goes through eval.
        via_route = routed.get(spec.metric) if name == task else None
        rows.append(
            {
                "task": name,
                "metric": spec.metric,
                "ours_eval": ours,
                "ours_route": via_route,
                "agree": None
                if ours is None or via_route is None
                else abs(ours - via_route) < 0.005,
                "baseline": baseline,
                "baseline_value": metrics[spec.metric],
                "ahead": None if ours is None else ours > metrics[spec.metric],
                "goal": spec.goal,
                "goal_met": None
                if ours is None or name != task
                else (ours > metrics[spec.metric] and (spec.floor is None or ours >= spec.floor)),
                "finetune_s": finetune_s,
                "task_s": round(time.monotonic() - started, 1),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 2 else f"{value:.1f}"
    return str(value)


def table(rows: list[Row]) -> str:
    columns = [
        ("task", "task"), ("metric", "metric"), ("ours_eval", "ours (eval)"),
        ("ours_route", "ours (route)"), ("agree", "agree"), ("baseline", "baseline"),
        ("baseline_value", "baseline"), ("ahead", "ahead"), ("goal_met", "goal met"),
        ("finetune_s", "fine-tune s"), ("task_s", "task s"), ("goal", "goal"),
    ]  # fmt: skip
    cells = [[title for _, title in columns]] + [[_cell(r[k]) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--home", type=Path, default=Path("bench/out/tasks"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--limit", type=int, default=0, help="first N rows of each file (0 = all)")
    parser.add_argument("--holdout", type=int, default=1000, help="SST-2 sentences held out")
    parser.add_argument("--baselines-only", action="store_true", help="skip the pipelines")
    parser.add_argument("--set", action="append", default=[], help="pipeline NAME=VALUE")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    # The pipelines prepare the same files as the baselines (a pipeline ignores what it lacks).
    args.set += [f"limit={args.limit}", f"seed={args.seed}", f"holdout={args.holdout}"]
    print(cpu_flags(), flush=True)
    rows: list[Row] = []
    for task in args.tasks.split(","):
        if task not in TASKS:
            parser.error(f"--tasks: {task!r} is not one of {', '.join(TASKS)}")
        rows += bench_task(task, args)
        print(table(rows[-2:] if task == "sst2" else rows[-1:]), flush=True)
    print("\n" + table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_flags(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
