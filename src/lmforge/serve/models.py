"""Several named models in one server: each with its own engine (and so its own KV budget),
the kind it is read as, its lease and its hot swap; and the one rule that picks the model of a
request from its `model` field and its route's task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lmforge.errors import EngineError, LmforgeError
from lmforge.serve.engine import Engine

log = logging.getLogger(__name__)

GENERATOR, CLASSIFIER, MATCHER, SUMMARIZER = "generator", "classifier", "matcher", "summarizer"
KINDS = (GENERATOR, CLASSIFIER, MATCHER, SUMMARIZER)


def model_kind(task: str, has_head: bool) -> str:
    """The one place a served model's kind is read. A classification head (from the model's
    config) makes it a classifier, or a matcher when its card's task is "matching" (a pair
    model); a language model is a summarizer when its card's task is "summarization", else a
    generator."""
    if has_head:
        return MATCHER if task == "matching" else CLASSIFIER
    return SUMMARIZER if task == "summarization" else GENERATOR


@dataclass(frozen=True)
class ModelInfo:
    """A served model as /v1/models shows it: `labels` are a classification head's, in id
    order (empty for a language model); `task` is its card's; `registered_as` is its name in
    the registry when it was served from there (`name` may be another: NAME=REF)."""

    name: str
    version: str | None
    sha256: str
    context_length: int
    path: str
    labels: tuple[str, ...] = ()
    task: str = "lm"
    registered_as: str | None = None

    @property
    def kind(self) -> str:
        return model_kind(self.task, bool(self.labels))


Loader = Callable[[], tuple[Engine, ModelInfo]]


class ServedModel:
    """One named model: the engine serving it now, leased per HTTP request, and its hot swap
    (one at a time per model; another model keeps serving meanwhile)."""

    def __init__(
        self,
        engine: Engine,
        info: ModelInfo,
        loader: Loader | None = None,
        drain_seconds: float = 30.0,
        ref: str = "",
    ) -> None:
        self.name = info.name
        self.ref = ref  # what it was loaded from: a dir or a registry reference
        self.engine = engine
        self.info = info
        self.loader = loader
        self.drain_seconds = drain_seconds
        self._leases: dict[int, int] = {}
        self._lock = threading.Lock()
        self._swap_lock = threading.Lock()

    @contextmanager
    def lease(self) -> Iterator[tuple[Engine, ModelInfo]]:
        """The engine (and what it serves) for one HTTP request; a swap waits until its last
        lease ends before shutting the old engine down."""
        with self._lock:
            engine, info = self.engine, self.info
            self._leases[id(engine)] = self._leases.get(id(engine), 0) + 1
        try:
            yield engine, info
        finally:
            with self._lock:
                self._leases[id(engine)] -= 1

    def reload(self) -> ModelInfo:
        """Load the model again (an alias may point at a new version), warm it up, swap it in,
        then retire the old engine once its requests are done. Blocking."""
        if self.loader is None:
            raise EngineError(f"model {self.name!r} has no loader to reload from")
        with self._swap_lock:
            engine, info = self.loader()
            engine.start()
            warm_up(engine)
            with self._lock:
                old, self.engine, self.info = self.engine, engine, info
            log.info("%s: now serving version %s (%s)", self.name, info.version, info.sha256)
            deadline = time.monotonic() + self.drain_seconds
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._leases.get(id(old)):
                        break
                time.sleep(0.02)
            old.shutdown(drain_seconds=self.drain_seconds)
            self._leases.pop(id(old), None)
            return info

    @property
    def alive(self) -> bool:
        return self.engine.alive


def warm_up(engine: Engine) -> None:
    """One tiny request of the model's kind (a generation, or a classification for a model
    with a head) so that the first real request does not pay for lazy set-up."""
    from lmforge.serve.request import Kind, SamplingParams

    if engine.labels:
        engine.run(engine.request("Hello", Kind.CLASSIFY))
        return
    engine.run(
        engine.request("Hello", Kind.GENERATE, SamplingParams(max_new_tokens=2, temperature=0))
    )


@dataclass(frozen=True)
class Task:
    """What a route does, and which kinds of model can do it: `tiers` in order of preference.
    Without a `model` field a request goes to the one model of the first tier that has any
    (two or more there: ambiguous); a named model must be of a kind in some tier."""

    verb: str
    tiers: tuple[tuple[str, ...], ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for tier in self.tiers for kind in tier)


LANGUAGE_MODELS = ((GENERATOR,), (SUMMARIZER,))
GENERATE = Task("generate text", LANGUAGE_MODELS)
EMBED = Task("embed", LANGUAGE_MODELS)  # pooled hidden states of a language model
# A classifier's head, else zero-shot label scoring by a language model.
CLASSIFY = Task("classify", ((CLASSIFIER,), *LANGUAGE_MODELS))
# A pair model's head, else the cosine of a language model's embeddings.
MATCH = Task("match", ((MATCHER,), *LANGUAGE_MODELS))
SUMMARIZE = Task("summarize", ((SUMMARIZER,), (GENERATOR,)))
TOKENIZE = Task("tokenize", (*LANGUAGE_MODELS, (CLASSIFIER, MATCHER)))
TASKS = (GENERATE, EMBED, CLASSIFY, MATCH, SUMMARIZE, TOKENIZE)


def abilities(kind: str) -> str:
    """What a model of `kind` can do, as a message says it."""
    return ", ".join(task.verb for task in TASKS if kind in task.kinds)


class ModelChoiceError(LmforgeError):
    """The request's `model` (or its absence) picks no served model for the route."""


class UnknownModel(ModelChoiceError):
    """No served model has the requested name."""


class AmbiguousModel(ModelChoiceError):
    """No `model` given, and more than one served model could answer."""


class WrongKind(ModelChoiceError):
    """The named model (or every served one) cannot do what the route does."""


class ModelSet:
    """The served models by name, in the order given."""

    def __init__(self, models: list[ServedModel]) -> None:
        self.by_name = {model.name: model for model in models}

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def _names(self) -> str:
        return ", ".join(map(repr, self.by_name))

    def named(self, name: str) -> ServedModel:
        """The model called `name`; UnknownModel naming the served ones."""
        if name not in self.by_name:
            # A name as long as the body allows is cut: the answer names it, not echoes it.
            shown = repr(name) if len(name) <= 64 else f"{name[:64]!r}..."
            raise UnknownModel(
                f"the model {shown} does not exist; this server serves {self._names()}"
            )
        return self.by_name[name]

    def candidates(self, task: Task) -> list[ServedModel]:
        """Every model that can do `task`, best kind first."""
        return sorted(
            (m for m in self if m.info.kind in task.kinds),
            key=lambda m: task.kinds.index(m.info.kind),
        )

    def default(self, task: Task) -> ServedModel | None:
        """The model a request without `model` goes to, None when it would be ambiguous or
        no model can do the task."""
        try:
            return self.choose(task, None)
        except ModelChoiceError:
            return None

    def choose(self, task: Task, name: str | None) -> ServedModel:
        """The model for a request to a route doing `task`, by its `model` field `name`."""
        if name is not None:
            model = self.named(name)
            kind = model.info.kind
            if kind not in task.kinds:
                raise WrongKind(
                    f"model {name!r} is a {kind}: it can {abilities(kind)}; to {task.verb}, "
                    f"use a {' or '.join(task.kinds)}{self._offer(task)}"
                )
            return model
        for tier in task.tiers:
            found = [m for m in self if m.info.kind in tier]
            if len(found) == 1:
                return found[0]
            if found:
                names = ", ".join(repr(m.name) for m in found)
                raise AmbiguousModel(
                    f"model: more than one served model can {task.verb} ({names}); "
                    "name one in the `model` field"
                )
        if len(self) == 1:
            (only,) = self
            served = f"{only.name!r} is a {only.info.kind}: it can {abilities(only.info.kind)}"
        else:
            served = f"this server serves {self._describe()}"
        raise WrongKind(
            f"no served model can {task.verb} (that takes a {' or '.join(task.kinds)}); {served}"
        )

    def _offer(self, task: Task) -> str:
        able = [repr(m.name) for m in self.candidates(task)]
        return f" such as {', '.join(able)}" if able else " (none is served)"

    def _describe(self) -> str:
        return ", ".join(f"{m.name!r} ({m.info.kind})" for m in self)
