"""DESIGN.md §3: who may import whom, checked on the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lmforge"
CORE = {"lmforge", "lmforge.config", "lmforge.config.data", "lmforge.config.train"}
CORE |= {"lmforge.errors", "lmforge.modelio"}
# Small shared helpers with no knowledge of any verb; every layer may use them.
HELPERS = {"lmforge.fsutil", "lmforge.logs", "lmforge.progress", "lmforge.records"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        imports = _imports(path)
        ours = {name for name in imports if name == "lmforge" or name.startswith("lmforge.")}

        def forbid(prefixes: tuple[str, ...], why: str, module=module, names=imports) -> None:
            for name in names:
                if name.startswith(prefixes) and not name.startswith(module):
                    problems.append(f"{module} imports {name}: {why}")

        if module.startswith("lmforge.data"):
            forbid(
                ("lmforge.train", "lmforge.serve", "lmforge.registry", "lmforge.evaluate"),
                "data never imports later stages",
            )
        if module.startswith("lmforge.train"):
            forbid(("lmforge.serve",), "train never imports serve")
        if module.startswith("lmforge.serve"):
            allowed = CORE | HELPERS | {"lmforge.serve", "lmforge.registry"}
            for name in ours:
                if not any(name == a or name.startswith(a + ".") for a in allowed):
                    problems.append(
                        f"{module} imports {name}: serve imports only core and registry"
                    )
        if module in ("lmforge.serve.scheduler", "lmforge.serve.request"):
            forbid(("torch", "numpy"), "scheduler and request are pure Python")
        if module.startswith("lmforge.deploy"):
            forbid(
                ("lmforge.serve", "lmforge.train", "lmforge.data", "torch"),
                "deploy runs `lmforge serve` processes; it never imports their code",
            )
        if module.startswith(("lmforge.bench", "lmforge.monitor")):
            forbid(
                ("lmforge.serve", "lmforge.train", "lmforge.data", "torch"),
                "load generator and monitor are HTTP clients only",
            )
        if module == "lmforge.serve.api":
            forbid(("lmforge.serve.runner",), "the API never imports the runner")
        if module in CORE | HELPERS - {"lmforge"}:
            forbid(("torch", "transformers"), "core modules stay light (no torch)")
        if module != "lmforge.cli" and module != "lmforge.__main__":
            forbid(("lmforge.cli",), "only the entry point imports the CLI")
    return problems


def test_import_rules_hold() -> None:
    assert _violations() == []


def test_checker_sees_imports(tmp_path: Path) -> None:
    """The checker must actually parse imports, or the rule test above could never fail."""
    sample = tmp_path / "sample.py"
    sample.write_text("import torch\nfrom lmforge.serve import runner\n", encoding="utf-8")
    assert _imports(sample) == {"torch", "lmforge.serve", "lmforge.serve.runner"}
    assert _module_name(PACKAGE / "serve" / "api.py") == "lmforge.serve.api"
