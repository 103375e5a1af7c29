"""The `lmforge` command: one table of verbs. The only module that imports every verb.

Each verb parses its options into a config, calls one function and renders its result
(lmforge.render: a table, or with `--json` one JSON document). Verb bodies import their
implementation lazily so that `lmforge --help` stays fast. Errors become one line on stderr
and the exit code of their class (lmforge.errors.ExitCode; `cliutil.run`).

Longer than ~300 lines on purpose: it is the whole table of twenty verbs, each with its
`--help` text (about a quarter of the file); split up, the table would no longer be one.
"""

from __future__ import annotations

from pathlib import Path

import click

from lmforge import __version__, render
from lmforge.cliutil import STATE, config_command, emit, run
from lmforge.config.data import InspectConfig, PrepareConfig
from lmforge.config.deploy import LocalDeployConfig
from lmforge.config.evaluate import EvalConfig
from lmforge.config.registry import (
    DeleteConfig,
    DiffConfig,
    ListConfig,
    PromoteConfig,
    PullConfig,
    RegisterConfig,
    RollbackConfig,
    ShowConfig,
)
from lmforge.config.serve import BenchConfig, MonitorConfig, ServeConfig
from lmforge.config.train import DistillConfig, TrainConfig, TuneConfig
from lmforge.errors import EXIT_CODE_MEANINGS, ExitCode

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="lmforge")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (for machines).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(debug: bool, log_json: bool, verbose: bool) -> None:
    """lmforge: prepare data, train, evaluate, register and serve GPT-2-family models."""
    from lmforge.logs import setup_logging
    from lmforge.threads import openmp_environment

    openmp_environment()  # before any verb imports torch: libgomp reads it once, when it loads

    STATE["debug"] = debug
    setup_logging(json_lines=log_json, verbose=verbose or debug)


@cli.group()
def data() -> None:
    """Prepare and inspect dataset dirs (tokenizer + packed token files + manifest)."""


@data.command("prepare")
@config_command(PrepareConfig, "inputs")
def data_prepare(config: PrepareConfig) -> None:
    """Clean, deduplicate, redact, split, tokenize and pack INPUTS into a dataset dir.

    \b
    Examples:
      lmforge data prepare builtin:python-docs --output data/pydocs
      lmforge data prepare corpus/ notes.jsonl.gz --output data/mine --vocab-size 16384
      lmforge data prepare corpus/ --engine ray --output data/big   # Ray at RAY_ADDRESS
    """
    from lmforge.data.prepare import prepare
    from lmforge.data.summary import print_summary

    result = prepare(config)
    print_summary(
        result.manifest, str(result.output), render.console(), result.seconds, result.resumed_blocks
    )


@data.command("inspect")
@config_command(InspectConfig, "dataset", json_output=True)
def data_inspect(config: InspectConfig, as_json: bool) -> None:
    """Summarize a dataset dir, check its files' sha256, and show decoded samples. The exit
    code is 1 when a file is missing or does not match its sha256."""
    from lmforge.data.inspect import inspect, split_summary
    from lmforge.data.summary import print_summary

    manifest, checks, samples = inspect(config)
    ok = all(state == "ok" for state in checks.values())
    document = {
        "dataset": config.dataset,
        "ok": ok,
        "files": checks,
        **split_summary(Path(config.dataset), manifest),
        "split": config.split,
        "samples": samples,
        "manifest": manifest,
    }
    if not as_json:
        print_summary(manifest, config.dataset, render.console())
    emit(document, as_json, render.inspection)
    if not ok:
        raise click.exceptions.Exit(ExitCode.ERROR)


@cli.command("train")
@config_command(TrainConfig)
def train_cmd(config: TrainConfig) -> None:
    """Train a GPT-2 model on a dataset dir (or fine-tune --init on a task) with the HF Trainer.

    \b
    Examples:
      lmforge train --data .lmforge/datasets/ptb --output models/ptb-small --max-time 30
      lmforge train --data data/mine --init models/ptb-small --output models/mine --epochs 2
      torchrun --nproc_per_node 2 -m lmforge train --data data/ptb --output models/ddp
    """
    from lmforge.train.train import train

    result = train(config)
    if result.metrics:
        render.metrics("final metrics", result.metrics, str(result.output))


@cli.command("distill")
@config_command(DistillConfig)
def distill_cmd(config: DistillConfig) -> None:
    """Distil --teacher into a student with fewer layers (DistilGPT2's recipe)."""
    from lmforge.train.distill import distill

    result = distill(config)
    if result.metrics:
        render.metrics("student metrics", result.metrics, str(result.output))


@cli.command("tune")
@config_command(TuneConfig)
def tune_cmd(config: TuneConfig) -> None:
    """Search hyperparameters with Optuna (grid, random, TPE, GP) over train options."""
    from lmforge.train.tune import tune

    tune(config, render.console())


@cli.command("eval")
@config_command(EvalConfig, "model", json_output=True)
def eval_cmd(config: EvalConfig, as_json: bool) -> None:
    """How good is MODEL: the tasks of --suite (perplexity, summarization ROUGE/BLEU,
    classification, matching, robustness, canary exposure, verbatim extraction) and/or
    sliding-window perplexity of --perplexity files, written to --report DIR (report.json,
    report.md, plots). With --baseline, a side-by-side comparison against the suite's gate;
    the exit code is 8 when the candidate fails it. --json prints report.json's document.

    \b
    Examples:
      lmforge eval models/ptb --suite configs/eval-ptb.yaml --report reports/ptb
      lmforge eval models/ptb --perplexity ../shared/data/ptb/ptb.test.txt --report reports/p
      lmforge eval models/new --suite S.yaml --baseline models:/ptb@production --report R
    """
    from lmforge.evaluate.eval import evaluate
    from lmforge.evaluate.report import markdown
    from lmforge.gate import document_refusal

    report = evaluate(config)
    refused = document_refusal(report.get("comparison"), config.model, config.baseline)
    emit(report, as_json, lambda r: render.evaluation(markdown(r), config.report), refused)


@cli.group()
def registry() -> None:
    """Versions, aliases and the promotion gate, on MLflow ($MLFLOW_TRACKING_URI or the
    embedded store in $LMFORGE_HOME)."""


@registry.command("register")
@config_command(RegisterConfig, "model_dir", json_output=True)
def registry_register(config: RegisterConfig, as_json: bool) -> None:
    """Verify MODEL_DIR and register it as a new version of --name."""
    from lmforge.registry.info import registration
    from lmforge.registry.register import register

    version = register(Path(config.model_dir), config.name)
    emit(registration(version), as_json, render.registered)


@registry.command("list")
@config_command(ListConfig, "name", json_output=True)
def registry_list(config: ListConfig, as_json: bool) -> None:
    """Registered models and their versions, aliases and headline metrics."""
    from lmforge.registry.info import list_versions, models_summary

    versions = list_versions(config)
    emit({"versions": versions, "models": models_summary(versions)}, as_json, render.versions)


@registry.command("show")
@config_command(ShowConfig, "ref", json_output=True)
def registry_show(config: ShowConfig, as_json: bool) -> None:
    """One version: aliases, lineage, data, metrics and training config."""
    from lmforge.registry.info import show_version

    emit(show_version(config), as_json, render.version)


@registry.command("diff")
@config_command(DiffConfig, "name", "left", "right", json_output=True)
def registry_diff(config: DiffConfig, as_json: bool) -> None:
    """Config, metrics and data of two versions side by side (differences in bold)."""
    from lmforge.registry.info import diff_versions

    emit(diff_versions(config), as_json, render.diff)


@registry.command("promote")
@config_command(PromoteConfig, "name", "version", json_output=True)
def registry_promote(config: PromoteConfig, as_json: bool) -> None:
    """Move --alias to VERSION if the gate passes (or with --force --reason). The exit code
    is 8 when the gate refuses."""
    from lmforge.registry.promote import promote

    promotion = promote(config)
    emit(promotion.to_json(), as_json, render.promotion, promotion.refusal)


@registry.command("rollback")
@config_command(RollbackConfig, "name")
def registry_rollback(config: RollbackConfig) -> None:
    """Move --alias back to its previous holder, from the alias history."""
    from lmforge.registry.rollback import rollback

    was, now = rollback(config)
    render.line(f"@{config.alias}: v{was} → v{now}")


@registry.command("pull")
@config_command(PullConfig, "ref")
def registry_pull(config: PullConfig) -> None:
    """Download a version into $LMFORGE_HOME/cache and verify every file's sha256."""
    from lmforge.registry.pull import pull

    path, version = pull(config.ref)
    render.line(f"{version.name}/{version.version}: verified at [bold]{path}[/bold]")


@registry.command("delete")
@config_command(DeleteConfig, "name", "version")
def registry_delete(config: DeleteConfig) -> None:
    """Delete a version (refused while it holds an alias)."""
    from lmforge.registry.delete import delete_version

    delete_version(config)
    render.line(f"deleted {config.name}/{config.version}")


@cli.command("serve")
@config_command(ServeConfig, "model")
def serve_cmd(config: ServeConfig) -> None:
    """Serve MODEL (a model dir or models:/NAME@ALIAS), or several as NAME=REF, over HTTP:
    generate, completions, embeddings, classify, match, summarize; OpenAPI at /docs,
    Prometheus at /metrics.

    Each model gets its own engine, with the engine options (--kv-slots, --max-batch-tokens,
    ...) applied to each, so KV memory adds up over the models; --model-kv-slots NAME=SLOTS
    gives one model its own number of slots. A request picks its model by
    the `model` field; without it, a route goes to the one served model of the kind it needs
    (classify: the classifier, else a language model zero-shot; match: the matcher, else a
    language model's embeddings; summarize: the summarizer, else the generator). POST
    /admin/reload?model=NAME swaps one model in again while the others serve.

    \b
    Examples:
      lmforge serve models/ptb
      LMFORGE_API_KEYS=$(cat keys.txt) lmforge serve models:/ptb@production --host 0.0.0.0
      lmforge serve gen=models:/ptb@production sst2=models:/sst2@production --watch-alias 30
    """
    from lmforge.serve.server import serve

    serve(config)


@cli.command("bench")
@config_command(BenchConfig, "url")
def bench_cmd(config: BenchConfig) -> None:
    """Load-test a server (ours or any OpenAI-compatible one): TTFT, time per output token,
    inter-token latency, end-to-end latency, throughput and errors, per concurrency level.

    \b
    Example:
      lmforge bench http://127.0.0.1:8000 --concurrency 1,8,32 --output reports/bench
    """
    from lmforge.bench.loadgen import run_bench, table

    results = run_bench(config)
    render.console().print(table(results))


@cli.command("monitor")
@config_command(MonitorConfig, "url")
def monitor_cmd(config: MonitorConfig) -> None:
    """Poll URL/ping (and optionally time a tiny generate against an SLO, and with --drift
    compare the server's prompt NLL histogram with the eval reference); one JSON line per
    poll. Exit code 1 once --failures consecutive polls failed or the input drifted (PSI
    above --drift-threshold; the JSON line's "drift" says), 0 when --count polls ended healthy.

    \b
    Examples:
      lmforge monitor http://127.0.0.1:8000 --interval 10 --failures 3 --probe-slo 2
      lmforge monitor http://127.0.0.1:8000 --drift --interval 300
    """
    from lmforge.monitor import monitor

    raise click.exceptions.Exit(monitor(config))


@cli.group()
def deploy() -> None:
    """Run lmforge behind a load balancer (see deploy/ for containers and Kubernetes)."""


@deploy.command("local")
@config_command(LocalDeployConfig, "model")
def deploy_local_cmd(config: LocalDeployConfig) -> None:
    """N `lmforge serve` workers on loopback behind the system's nginx (least_conn, SSE
    unbuffered, passive health checks, safe retries); workers that die are restarted;
    Ctrl-C or SIGTERM drains the workers, then stops nginx.

    \b
    Example:
      lmforge deploy local models/ptb --workers 2 --port 8080
    """
    from lmforge.deploy.local import deploy_local

    deploy_local(config)


@cli.group()
def pipeline() -> None:
    """Run a model's whole life from a YAML file of lmforge steps."""


@pipeline.command("run")
@click.argument("pipeline_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fresh", is_flag=True, help="Redo every step (removes the pipeline's home).")
@click.option("--no-serve", is_flag=True, help="Skip the serving step (stop after the others).")
@click.option(
    "--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a variable."
)
def pipeline_run(pipeline_file: Path, fresh: bool, no_serve: bool, overrides: tuple[str]) -> None:
    """Run the steps of PIPELINE_FILE in order, skipping those already done.

    \b
    Example:
      lmforge pipeline run configs/quickstart.yaml --set steps=300 --no-serve
    """
    from lmforge.pipeline.run import load_pipeline, parse_overrides, run_pipeline

    pipeline = load_pipeline(pipeline_file, parse_overrides(overrides))
    run_pipeline(pipeline, fresh=fresh, serve=not no_serve)


@cli.command("quickstart")
@click.option("--data", default="builtin:python-docs", show_default=True, help="Corpus to use.")
@click.option("--model-size", default="small", show_default=True, help="Teacher size preset.")
@click.option("--steps", default=150, show_default=True, help="Training steps (teacher, student).")
@click.option("--port", default=8000, show_default=True, help="Port to serve on.")
@click.option("--fresh", is_flag=True, help="Redo every step.")
@click.option("--no-serve", is_flag=True, help="Stop after registration and promotion.")
def quickstart(
    data: str, model_size: str, steps: int, port: int, fresh: bool, no_serve: bool
) -> None:
    """The whole life of a model on the built-in corpus, no network or GPU needed: prepare,
    train, distil, register both, promote the better through the gate, and serve
    models:/quickstart@production on http://127.0.0.1:8000 (Ctrl-C stops).
    """
    from lmforge.pipeline.run import builtin_pipeline, load_pipeline, run_pipeline

    values = {"data": data, "model_size": model_size, "steps": steps, "port": port}
    run_pipeline(
        load_pipeline(builtin_pipeline("quickstart"), values), fresh=fresh, serve=not no_serve
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one line on stderr and their exit code."""
    run(cli, argv)
