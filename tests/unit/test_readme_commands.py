"""Every command in the README's and docs' shell blocks is checked against the real thing:
`lmforge` (and `torchrun -m lmforge`) lines are parsed by the CLI itself, `make` targets exist
in the Makefile, `curl` lines name a real route and send a body its schema accepts, and the
config files they name exist. The quickstart and the integration tests run these verbs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip():
                    found.append((doc.name, line.strip()))
    return found


def _words(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # leading VAR=value
        words.pop(0)
    return words


def _check_lmforge(args: list[str]) -> None:
    from lmforge.cli import cli

    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        name = rest.pop(0)
        assert name in command.commands, f"no verb {name!r}"
        command = command.commands[name]
    command.make_context(command.name or "lmforge", rest)
    for arg in rest:
        if arg.startswith("configs/"):
            assert (ROOT / arg).exists(), f"{arg} does not exist"


def _check_curl(words: list[str]) -> None:
    from pydantic import TypeAdapter

    from lmforge.serve.http.app import create_app

    url = next(w for w in words if "/" in w and not w.startswith(("-", "{", "Authorization")))
    path = "/" + url.split("/", 1)[1]
    body = words[words.index("-d") + 1] if "-d" in words else None
    method = "POST" if body is not None else "GET"
    routes = {(r.path, m): r for r in create_app(None).routes for m in getattr(r, "methods", ())}
    assert (path, method) in routes, f"no route {method} {path}"
    field = getattr(routes[path, method], "body_field", None)
    if body is not None:
        TypeAdapter(field.field_info.annotation).validate_python(json.loads(body))


@pytest.mark.parametrize(("doc", "line"), shell_lines())
def test_documented_command_is_real(doc: str, line: str) -> None:
    words = _words(line)
    program = words[0]
    if program == "lmforge":
        _check_lmforge(words[1:])
    elif program == "torchrun":
        _check_lmforge(words[words.index("lmforge") + 1 :])
    elif program == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^{re.escape(words[1])}:", makefile, re.M), line
    elif program == "curl":
        _check_curl(words)
    else:
        assert program == "export", f"{doc}: a command this test does not know: {line}"


def test_the_documents_hold_commands() -> None:
    programs = {_words(line)[0] for _, line in shell_lines()}
    assert {"lmforge", "make", "curl", "torchrun"} <= programs
