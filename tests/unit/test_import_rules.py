"""DESIGN.md §3: who may import whom, as one table checked on the source with `ast`, and tests
that a forbidden import planted in a copy of a real module is reported.

Each layer (a module, or a package and everything under it) lists the lmforge modules it may
import; anything else of ours is a violation, and a module no row covers is one too, so the
table cannot silently fall behind the tree. The most specific row wins (`lmforge.serve.http`
over `lmforge.serve`). Two departures from DESIGN.md, both named in the table: `train` and
`evaluate` also reach `registry.store` and `registry.query` (MLflow tracking and its filter
strings) and `registry.resolve` (`--init`, `--teacher` and `--model` accept `models:/`
references); `evaluate` also reaches `registry.evals` (an evaluated version's results are
recorded on it, where the promotion gate reads them).
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lmforge"

# The core: importable by every layer, importing no layer. hf.py must import transformers,
# so "light" means: torch and transformers only inside functions (or for type checking).
CORE = (
    "lmforge.config",
    "lmforge.errors",
    "lmforge.hf",
    "lmforge.cards",
    "lmforge.modelio",
    "lmforge.metrics",
    "lmforge.gate",
    "lmforge.prompts",
    "lmforge.records",
    "lmforge.apikeys",
    "lmforge.render",
    "lmforge.drift",  # the NLL histogram and PSI that serve, eval and monitor share
    # small helpers with no knowledge of any verb
    "lmforge.fsutil",
    "lmforge.logs",
    "lmforge.progress",
    "lmforge.threads",
    "lmforge.cpuinfo",
)
HEAVY = ("torch", "transformers")
TRACKING_AND_RESOLVER = (
    "lmforge.registry.store",
    "lmforge.registry.query",
    "lmforge.registry.resolve",
)
SERVE_INTERNALS = (
    "lmforge.serve.runner",
    "lmforge.serve.gpt2",
    "lmforge.serve.packed",
    "lmforge.serve.kv_cache",
    "lmforge.serve.sampling",
)


@dataclass(frozen=True)
class Rule:
    may_import: tuple[str, ...]  # lmforge modules or packages (with everything under them)
    why: str
    never: tuple[str, ...] = ()  # anything (third-party too) forbidden anywhere in the layer
    light: bool = False  # HEAVY imported only inside functions


RULES: dict[str, Rule] = {
    **{
        module: Rule(CORE, "core modules import no layer", light=True)
        for module in CORE
        if module != "lmforge.config"
    },
    "lmforge.config": Rule(CORE, "config is core: no layer, no torch", never=HEAVY),
    "lmforge.data": Rule((*CORE, "lmforge.data"), "data imports only the core"),
    "lmforge.train": Rule(
        (*CORE, "lmforge.data", "lmforge.train", *TRACKING_AND_RESOLVER),
        "train imports the core, data, the MLflow store and the model resolver; never evaluate",
    ),
    "lmforge.evaluate": Rule(
        (
            *CORE,
            "lmforge.data",
            "lmforge.evaluate",
            "lmforge.train.metrics",
            *TRACKING_AND_RESOLVER,
            "lmforge.registry.evals",
        ),
        "evaluate imports train only through its public metrics (summed_loss, perplexities); "
        "it records a version's results through registry.evals",
    ),
    "lmforge.registry": Rule((*CORE, "lmforge.registry"), "registry imports only the core"),
    "lmforge.serve": Rule(
        (*CORE, "lmforge.serve", "lmforge.registry"), "serve imports the core and registry"
    ),
    "lmforge.serve.http": Rule(
        (*CORE, "lmforge.serve", "lmforge.registry"),
        "serve/http talks to engines, never to the runner, forward, KV cache or sampling",
        never=SERVE_INTERNALS,
    ),
    # DESIGN: scheduler, request and stream import no torch, so none of them may reach the
    # modules that hold tensors either. The scheduler allocates KV slots through the cache's
    # pure-Python face (`SlotTable`), so kv_cache keeps torch inside its functions.
    "lmforge.serve.scheduler": Rule(
        (*CORE, "lmforge.serve"),
        "the scheduler is pure Python; of the KV cache it uses only the slot allocation",
        never=("torch", "numpy", *(m for m in SERVE_INTERNALS if m != "lmforge.serve.kv_cache")),
    ),
    **{
        module: Rule(
            (*CORE, "lmforge.serve"),
            "request and stream are pure Python",
            never=("torch", "numpy", *SERVE_INTERNALS),
        )
        for module in ("lmforge.serve.request", "lmforge.serve.stream")
    },
    "lmforge.serve.kv_cache": Rule(
        (*CORE, "lmforge.serve"),
        "the slot allocation the scheduler imports stays pure Python: torch inside functions",
        light=True,
    ),
    "lmforge.deploy": Rule(
        (*CORE, "lmforge.deploy"),
        "deploy runs `lmforge serve` processes; it never imports their code",
        never=("torch",),
    ),
    "lmforge.bench": Rule(
        (*CORE, "lmforge.bench"), "the load generator is an HTTP client only", never=("torch",)
    ),
    "lmforge.monitor": Rule(
        (*CORE, "lmforge.registry.store", "lmforge.registry.refs", "lmforge.registry.versions"),
        "the monitor is an HTTP client, and reads a version's drift reference from the registry",
        never=("torch",),
    ),
    "lmforge.pipeline": Rule(
        (*CORE, "lmforge.pipeline"), "pipelines run verbs as processes, not their code"
    ),
    "lmforge.cliutil": Rule(CORE, "the CLI's option plumbing knows no verb"),
    "lmforge.cli": Rule(("lmforge",), "the verb table reaches every verb"),
    "lmforge.__main__": Rule(("lmforge.cli",), "the entry point runs the CLI"),
    "lmforge": Rule((), "the package root imports nothing of ours"),
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, package: Path) -> bool:
    relative = Path(*name.split(".")[1:])
    base = package / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _named(node: ast.Import | ast.ImportFrom, package: Path) -> set[str]:
    """What an import statement imports: `from lmforge.serve import runner` names the module
    lmforge.serve.runner; `from lmforge.cards import ModelCard` names lmforge.cards."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level or not node.module:
        return set()
    found = set()
    for alias in node.names:
        full = f"{node.module}.{alias.name}"
        ours = node.module.split(".")[0] == "lmforge"
        found.add(full if ours and _is_module(full, package) else node.module)
    return found - {"lmforge"}


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _load_time(body: list[ast.stmt], package: Path) -> set[str]:
    """Imports that run when the module is imported: not in functions, not for type checking."""
    found: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _named(node, package)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or _is_type_checking(node):
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    found |= _load_time([n for n in inner if isinstance(n, ast.stmt)], package)
                    for handler in inner:
                        if isinstance(handler, ast.ExceptHandler):
                            found |= _load_time(handler.body, package)
    return found


def imports_of(path: Path, package: Path = PACKAGE) -> tuple[set[str], set[str]]:
    """(every import anywhere in the file, the imports that run at import time)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    everywhere: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            everywhere |= _named(node, package)
    return everywhere, _load_time(tree.body, package)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def rule_for(module: str) -> tuple[str, Rule] | None:
    """The most specific row covering `module`; the root row covers the package root only."""
    rows = [
        layer for layer in RULES if module == layer or (_within(module, (layer,)) and "." in layer)
    ]
    return (layer := max(rows, key=len), RULES[layer]) if rows else None


def violations(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        found = rule_for(module)
        if found is None:
            problems.append(f"{module}: no row of the import table covers it")
            continue
        layer, rule = found
        everywhere, load_time = imports_of(path, package)
        for name in sorted(everywhere):
            ours = _within(name, ("lmforge",))
            allowed = _within(name, (layer, *rule.may_import))
            if _within(name, rule.never) or (ours and not allowed):
                problems.append(f"{module} imports {name}: {rule.why}")
        if rule.light:
            for name in sorted(load_time):
                if _within(name, HEAVY):
                    problems.append(f"{module} imports {name} at load time: core stays light")
    return problems


def test_import_rules_hold() -> None:
    assert violations() == []


def test_the_table_names_every_core_module_as_core() -> None:
    for module in CORE:
        assert RULES[module].may_import == CORE


def _copy_with(tmp_path: Path, source: str, target: str, planted: str) -> Path:
    """A copy of the package where `target` holds the text of the real module `source` with
    `planted` added as its last import."""
    package = tmp_path / "lmforge"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", "*.html"))
    destination = package / target
    destination.parent.mkdir(parents=True, exist_ok=True)
    (destination.parent / "__init__.py").touch()
    destination.write_text((PACKAGE / source).read_text(encoding="utf-8") + planted + "\n")
    return package


PLANTED = [
    ("train/tasks.py", "train/tasks.py", "from lmforge.evaluate.eval import evaluate"),
    ("evaluate/scoring.py", "evaluate/scoring.py", "from lmforge.train.run import run_training"),
    ("cards.py", "cards.py", "from lmforge.train.data import open_dataset"),
    ("hf.py", "hf.py", "import torch"),
    ("registry/register.py", "registry/register.py", "from lmforge.serve import engine"),
    ("serve/tasks.py", "serve/tasks.py", "from lmforge.train.metrics import summed_loss"),
    ("serve/scheduler.py", "serve/scheduler.py", "import torch"),
    ("serve/request.py", "serve/request.py", "from lmforge.serve.runner import Runner"),
    ("serve/tasks.py", "serve/http/planted.py", "from lmforge.serve import runner"),
    ("data/manifest.py", "data/manifest.py", "from lmforge.registry.resolve import resolve"),
    ("serve/server.py", "serve/server.py", "from lmforge.cli import main"),
]


@pytest.mark.parametrize(("source", "target", "planted"), PLANTED)
def test_a_planted_forbidden_import_is_reported(
    tmp_path: Path, source: str, target: str, planted: str
) -> None:
    package = _copy_with(tmp_path, source, target, planted)
    module = module_name(package / target, package)
    imported = planted.split()[1]
    reported = [p for p in violations(package) if p.startswith(f"{module} imports {imported}")]
    assert reported, f"{planted!r} in {module} went unreported"


def test_an_import_inside_a_function_keeps_core_light(tmp_path: Path) -> None:
    package = _copy_with(tmp_path, "cards.py", "cards.py", "def later() -> None:\n    import torch")
    assert not [p for p in violations(package) if p.startswith("lmforge.cards")]


def test_a_module_outside_the_table_is_reported(tmp_path: Path) -> None:
    package = _copy_with(tmp_path, "prompts.py", "stray.py", "")
    assert "lmforge.stray: no row of the import table covers it" in violations(package)
