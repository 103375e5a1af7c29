"""The local engine: blocks of documents cleaned by a pool of worker processes, handed back
in input order. At most two blocks per worker are in flight, so memory stays bounded
whatever the corpus size; one worker runs in this process (no pool)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from lmforge.config.data import PrepareConfig
from lmforge.data.blocks import BlockCache, CleanedBlock, clean_and_save
from lmforge.data.document import Document

_PR_SET_PDEATHSIG = 1


def cleaned_blocks(
    cfg: PrepareConfig,
    blocks: Iterable[list[Document]],
    *,
    workers: int,
    fingerprint: bool,
    cache: BlockCache | None = None,
) -> Iterator[CleanedBlock]:
    """Each block's `clean_block` result, in the order of `blocks`; blocks `cache` holds are
    loaded instead of recomputed, and finished ones saved to it."""
    if workers <= 1:
        for block in blocks:
            path = cache.path(block) if cache is not None else None
            done = cache.load(path) if cache is not None and path is not None else None
            yield done or clean_and_save(cfg, block, fingerprint, path)
        return
    # fork: workers start in milliseconds and inherit the imported modules. The only other
    # thread then may be the progress display's, which the workers never touch.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pending: deque[CleanedBlock | Future[CleanedBlock]] = deque()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
    try:
        # The first task forks every worker: now, before the tokenizer trainer's threads start
        # (with the first routed document, which may come from a cached block).
        pool.submit(int).result()
        for block in blocks:
            path = cache.path(block) if cache is not None else None
            done = cache.load(path) if cache is not None and path is not None else None
            pending.append(done or pool.submit(clean_and_save, cfg, block, fingerprint, path))
            while len(pending) > 2 * workers:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        # On SIGTERM or an error, queued blocks are dropped rather than run to completion.
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_start() -> None:
    """A worker dies with its parent (a SIGKILLed run leaves no orphans holding its pipes)
    and leaves Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _result(pending: CleanedBlock | Future[CleanedBlock]) -> CleanedBlock:
    return pending if isinstance(pending, CleanedBlock) else pending.result()
