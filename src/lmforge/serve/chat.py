"""Chat messages to a prompt: the chat template a model is served with, rendered as
`transformers` renders it (`apply_chat_template`: the same sandboxed Jinja, `messages`,
`add_generation_prompt`, `bos_token`, `eos_token`).

Which template: `--chat-template FILE` when given, else the model's own (`chat_template` in
its `tokenizer_config.json`, or its `chat_template.jinja`), else `DEFAULT_TEMPLATE`, which a
GPT-2 model trained on plain text can follow: each message a plain-text turn, `Role: text`
on its own line, ending with the assistant's cue `Assistant:`. A reply under the default
template stops at the next turn marker (`DEFAULT_STOPS`), and its leading space (GPT-2 puts
the space before a word in the word's token) is not part of the reply."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError
from lmforge.serve.request import InvalidRequest

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] | trim }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
# The turn markers a reply under the default template ends at (the model's next turn).
DEFAULT_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")
# The file transformers' save_pretrained writes a tokenizer's chat template to.
TEMPLATE_FILE = "chat_template.jinja"


class TemplateError(InvalidRequest):
    """The chat template cannot render these messages (it raised, or it is broken)."""


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and what a reply under it needs: the stop strings that end a
    turn, and whether the reply's leading whitespace is the template's, not the model's."""

    source: str
    origin: str  # where it came from, for logs and errors
    stops: tuple[str, ...] = ()
    strip_leading: bool = False
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt for `messages` (each with `role` and string `content`), ending with the
        cue for the assistant's reply."""
        from jinja2 import TemplateError as JinjaError
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            # Annotated as a str, it returns (rendered conversations, generation indices).
            result: Any = render_jinja_template(
                [list(messages)],
                chat_template=self.source,
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except (JinjaError, TypeError, ValueError, LookupError) as exc:
            # The template is the model's or the operator's code: what it raises for these
            # messages is the request's problem to fix, not a server error.
            raise TemplateError(f"the chat template ({self.origin}) failed: {exc}") from None
        return str(result[0][0])

    def check(self) -> None:
        """Compile the template now, so a broken one fails at startup, not at a request."""
        from jinja2 import TemplateError as JinjaError
        from transformers.utils.chat_template_utils import _compile_jinja_template

        try:
            _compile_jinja_template(self.source)
        except JinjaError as exc:
            raise ConfigError(
                f"the chat template ({self.origin}) is not valid Jinja: {exc}",
                hint="fix the template or pass another with --chat-template FILE",
            ) from None


def _token(value: object) -> str:
    """A special token as tokenizer_config.json spells it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content", "")
    return value if isinstance(value, str) else ""


def _own_template(config: dict[str, Any], model_dir: Path) -> str | None:
    """The model's own template: tokenizer_config.json's `chat_template` (one string, or a
    list of named ones, of which "default" is used), else its chat_template.jinja."""
    given = config.get("chat_template")
    if isinstance(given, list):
        named = {t.get("name"): t.get("template") for t in given if isinstance(t, dict)}
        given = named.get("default")
    if isinstance(given, str) and given.strip():
        return given
    path = model_dir / TEMPLATE_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None


def chat_template(model_dir: Path, override: str = "") -> ChatTemplate:
    """The chat template of the model in `model_dir`: the `override` file (a Jinja template,
    as transformers reads them), else the model's own, else the default; compiled now, so a
    broken one fails at startup."""
    config: dict[str, Any] = {}
    config_path = model_dir / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); no chat template from it", config_path, exc)
    bos, eos = _token(config.get("bos_token")), _token(config.get("eos_token"))
    if override:
        try:
            source = Path(override).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the chat template {override}: {exc.strerror}",
                hint="pass a Jinja file to --chat-template",
            ) from None
        template = ChatTemplate(source, f"--chat-template {override}", bos_token=bos, eos_token=eos)
    elif (own := _own_template(config, model_dir)) is not None:
        template = ChatTemplate(
            own, f"the chat template of {model_dir}", bos_token=bos, eos_token=eos
        )
    else:
        template = ChatTemplate(
            DEFAULT_TEMPLATE, "the default chat template", DEFAULT_STOPS, True, bos, eos
        )
    template.check()
    return template


def message_text(content: str | Sequence[dict[str, Any]] | None) -> str:
    """A message's content as one string: its text parts joined (OpenAI's content parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(str(part.get("text", "")) for part in content)


class Reply:
    """A reply's text as it streams: the template's leading whitespace dropped (when the
    template says so) however the first pieces split it."""

    def __init__(self, template: ChatTemplate) -> None:
        self.started = not template.strip_leading

    def piece(self, text: str) -> str:
        if self.started:
            return text
        text = text.lstrip()
        self.started = bool(text)
        return text
