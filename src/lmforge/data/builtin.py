"""`builtin:python-docs`: English text that ships with the Python interpreter itself.

The `pydoc_data` help topics plus the docstrings of the standard library's modules, classes
and functions (about 2 MB), read with `ast` so that no module is imported (importing some,
like `antigravity`, has side effects). The quickstart needs no network and no data file.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from lmforge.errors import DataError

CORPORA = ("python-docs",)
# Tests, IDLE and demo code hold fixtures and UI strings rather than prose.
_SKIP_DIRS = {"test", "tests", "idlelib", "turtledemo", "site-packages", "lib2to3", "ensurepip"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def check_builtin(spec: str) -> None:
    name = spec.split(":", 1)[1]
    if name not in CORPORA:
        raise DataError(f"unknown built-in corpus {spec!r}", hint=f"known: builtin:{CORPORA[0]}")


def _stdlib_files() -> Iterator[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if not any(p in _SKIP_DIRS or p.startswith(("test", "config-")) for p in parts):
            yield path


def builtin_texts(spec: str) -> Iterator[tuple[str, str]]:
    """Yield (origin, text): one document per help topic and per docstring."""
    check_builtin(spec)
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"pydoc:{name}", topics[name]
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue  # a few stdlib files are templates or need other Python versions
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for node in ast.walk(tree):
            if isinstance(node, _DOC_NODES) and (doc := ast.get_docstring(node)):
                where = getattr(node, "name", "")
                yield f"stdlib:{module}{'.' + where if where else ''}", doc
