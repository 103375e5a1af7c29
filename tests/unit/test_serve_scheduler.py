"""The scheduler on its own: fabricated requests, no model, no torch."""

from __future__ import annotations

import pytest

from lmforge.config import build_config
from lmforge.config.serve import EngineSettings
from lmforge.errors import ConfigError, EngineError
from lmforge.serve.kv_cache import SlotTable
from lmforge.serve.request import FinishReason, Kind, Request, SamplingParams
from lmforge.serve.scheduler import Overloaded, Scheduler

EOS = 0


def scheduler_of(max_seq_len: int = 1024, **settings: int) -> Scheduler:
    config = EngineSettings(**settings)
    return Scheduler(config, SlotTable(config.kv_slots), max_seq_len, eos_id=EOS)


def request(n_prompt: int, **kw) -> Request:
    return Request(list(range(1, n_prompt + 1)), **kw)


def run(scheduler: Scheduler, plan, token: int = 7) -> None:
    """Stand in for the runner: mark the chunks computed and give generate requests a token."""
    for chunk in plan.chunks:
        scheduler.on_computed(chunk)
        if not chunk.request.finished and not chunk.request.in_prefill:
            scheduler.on_token(chunk.request, token)


def test_admission_is_limited_by_free_slots_and_first_come_first_served() -> None:
    scheduler = scheduler_of(kv_slots=2, max_batch_size=8, max_batch_tokens=100)
    requests = [request(3) for _ in range(3)]
    for r in requests:
        scheduler.add(r)
    plan = scheduler.schedule()
    assert [c.request for c in plan.chunks] == requests[:2]
    assert {r.slot for r in requests[:2]} == {0, 1}
    assert list(scheduler.waiting) == [requests[2]]
    run(scheduler, plan)
    scheduler.finish(requests[0], FinishReason.STOP)
    plan = scheduler.schedule()
    assert requests[2].slot == 0
    assert [(c.request, c.length) for c in plan.chunks] == [(requests[1], 1), (requests[2], 3)]


def test_max_batch_size_caps_running_requests() -> None:
    scheduler = scheduler_of(kv_slots=8, max_batch_size=3, max_batch_tokens=100)
    for _ in range(5):
        scheduler.add(request(2))
    assert len(scheduler.schedule().chunks) == 3
    assert len(scheduler.waiting) == 2


def test_decodes_come_before_prefill_and_long_prompts_are_chunked() -> None:
    scheduler = scheduler_of(kv_slots=4, max_batch_size=4, max_batch_tokens=10)
    short = request(4)
    scheduler.add(short)
    run(scheduler, scheduler.schedule())
    long = request(25)
    scheduler.add(long)
    starts = []
    for _ in range(3):
        plan = scheduler.schedule()
        # The running decode is always planned first and costs one token of the budget.
        assert plan.chunks[0].request is short and plan.chunks[0].length == 1
        assert sum(c.length for c in plan.chunks) <= 10
        starts.append((plan.chunks[1].start, plan.chunks[1].length))
        run(scheduler, plan)
    assert starts == [(0, 9), (9, 9), (18, 7)]
    assert not long.in_prefill and len(long.output_ids) == 1


def test_a_full_queue_raises_overloaded_at_once() -> None:
    scheduler = scheduler_of(kv_slots=1, max_queue=2)
    for _ in range(3):  # one for the free slot, two queued
        scheduler.add(request(2))
    with pytest.raises(Overloaded, match="queue is full"):
        scheduler.add(request(2))


def test_abort_frees_the_slot_at_the_next_step() -> None:
    scheduler = scheduler_of(kv_slots=1)
    first, second = request(2), request(2)
    scheduler.add(first)
    scheduler.add(second)
    run(scheduler, scheduler.schedule())
    first.aborted = True
    plan = scheduler.schedule()
    assert plan.finished == [first] and first.finish_reason is FinishReason.ABORT
    assert [c.request for c in plan.chunks] == [second] and second.slot == 0


def test_deadlines_time_out_queued_and_running_requests() -> None:
    scheduler = scheduler_of(kv_slots=1)
    running, queued = request(2, deadline=10.0), request(2, deadline=5.0)
    scheduler.add(running)
    scheduler.add(queued)
    run(scheduler, scheduler.schedule(now=0.0))
    assert scheduler.schedule(now=6.0).finished == [queued]
    assert scheduler.schedule(now=11.0).finished == [running]
    assert running.finish_reason is FinishReason.TIMEOUT and scheduler.slots_used == 0


def test_sequences_reaching_the_context_finish_with_length() -> None:
    scheduler = scheduler_of(max_seq_len=8)
    r = request(5, params=SamplingParams(max_new_tokens=100))
    scheduler.add(r)
    for _ in range(10):
        run(scheduler, scheduler.schedule())
    assert r.finish_reason is FinishReason.LENGTH and r.num_tokens == 8


def test_max_new_tokens_finishes_with_length() -> None:
    scheduler = scheduler_of()
    r = request(3, params=SamplingParams(max_new_tokens=4))
    scheduler.add(r)
    while not r.finished:
        run(scheduler, scheduler.schedule())
    assert len(r.output_ids) == 4 and r.finish_reason is FinishReason.LENGTH


def test_prompts_longer_than_the_context_are_refused() -> None:
    scheduler = scheduler_of(max_seq_len=8)
    with pytest.raises(EngineError, match="8 tokens; the context holds 8"):
        scheduler.add(request(8))
    scheduler.add(request(8, kind=Kind.SCORE))


def test_bad_settings_name_every_problem() -> None:
    with pytest.raises(ConfigError, match=r"kv_slots: 0 must be at least 1.*max_queue: -1"):
        build_config(EngineSettings, {"kv_slots": 0, "max_queue": -1})


def test_sampling_params_name_bad_values() -> None:
    problems = SamplingParams(temperature=-1, top_p=0, stop=("",)).problems()
    assert [p.split("=")[0] for p in problems] == ["temperature", "top_p", "stop"]


class Stops:
    """Stands in for the detokenizer: the text reaches a stop string at `at` output tokens."""

    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.finals: list[bool] = []

    def reached(self, output_ids: list[int], final: bool) -> bool:
        self.finals.append(final)
        return len(output_ids) == self.at


def running(scheduler: Scheduler, **params) -> Request:
    r = request(3, params=SamplingParams(**params))
    scheduler.add(r)
    run(scheduler, scheduler.schedule())  # the prefill samples the first token (7)
    return r


def test_end_of_text_finishes_with_stop_once_min_new_tokens_are_out() -> None:
    scheduler = scheduler_of()
    eager = running(scheduler, max_new_tokens=10)
    assert scheduler.on_token(eager, EOS) is FinishReason.STOP and eager.finished
    patient = running(scheduler, max_new_tokens=10, min_new_tokens=3)
    # End-of-text as the second and third token is too early; as the fourth it ends.
    assert [scheduler.on_token(patient, EOS) for _ in range(2)] == [None, None]
    assert scheduler.on_token(patient, EOS) is FinishReason.STOP
    ignoring = running(scheduler, max_new_tokens=3, ignore_eos=True)
    assert scheduler.on_token(ignoring, EOS) is None
    assert scheduler.on_token(ignoring, EOS) is FinishReason.LENGTH


def test_stop_strings_finish_with_stop_even_on_the_last_token() -> None:
    scheduler = scheduler_of()
    r = running(scheduler, max_new_tokens=3)
    stops = Stops(at=3)
    assert scheduler.on_token(r, 7, stops) is None
    assert scheduler.on_token(r, 7, stops) is FinishReason.STOP  # not LENGTH
    # The text of the last token is read as final (an unfinished character is text then).
    assert stops.finals == [False, True] and scheduler.slots_used == 0


def test_score_and_embed_requests_finish_once_their_prompt_is_computed() -> None:
    scheduler = scheduler_of(max_batch_tokens=4)
    scored, embedded = request(6, kind=Kind.SCORE), request(2, kind=Kind.EMBED)
    scheduler.add(scored)
    scheduler.add(embedded)
    plan = scheduler.schedule()
    assert [scheduler.on_computed(c) for c in plan.chunks] == [None]  # 4 of 6 tokens
    plan = scheduler.schedule()
    reasons = [scheduler.on_computed(c) for c in plan.chunks]
    assert reasons == [FinishReason.STOP, FinishReason.STOP]
    assert scored.finished and embedded.finished and scheduler.slots_used == 0
