"""Continuous-batching admission over plain dataclasses: first come first served within the
slots, the token budget and the per-step prefill budget; refusals at once; finish frees."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inferd.errors import BadRequestError, OverloadedError
from inferd.generate.request import SamplingParams
from inferd.generate.scheduler import Limits, Scheduler, Sequence, State

LIMITS = Limits(
    max_sequences=3,
    max_tokens_in_flight=100,
    max_waiting=4,
    max_context=50,
    max_prefill_tokens=40,
)


def _scheduler(**changes: int) -> Scheduler:
    return Scheduler(replace(LIMITS, **changes))


def _sequence(prompt: int, max_tokens: int = 4) -> Sequence:
    return Sequence(prompt=list(range(1, prompt + 1)), params=SamplingParams(max_tokens=max_tokens))


def _added(scheduler: Scheduler, *sequences: Sequence) -> list[Sequence]:
    for sequence in sequences:
        scheduler.add(sequence)
    return list(sequences)


def test_admission_is_first_come_first_served() -> None:
    scheduler = _scheduler()
    a, b, c = _added(scheduler, _sequence(5), _sequence(3), _sequence(4))
    plan = scheduler.schedule()
    assert plan.prefill == [a, b, c]
    assert plan.decode == []
    assert all(s.state is State.RUNNING for s in (a, b, c))


def test_no_more_run_than_there_are_slots() -> None:
    scheduler = _scheduler(max_sequences=2)
    a, b, c = _added(scheduler, _sequence(5), _sequence(3), _sequence(4))
    assert scheduler.schedule().prefill == [a, b]
    assert {a.slot, b.slot} == {0, 1}
    assert list(scheduler.waiting) == [c]
    assert scheduler.schedule().prefill == [], "no slot was freed"


def test_a_freed_slot_goes_to_the_next_waiting() -> None:
    scheduler = _scheduler(max_sequences=2)
    a, _, c = _added(scheduler, _sequence(5), _sequence(3), _sequence(4))
    scheduler.schedule()
    freed = a.slot
    scheduler.finish(a, "stop")
    assert scheduler.schedule().prefill == [c]
    assert c.slot == freed


def test_the_token_budget_holds_back_the_head_and_those_behind_it() -> None:
    """b (15) does not fit beside a (20) in 30; c (5) would, but does not overtake b."""
    scheduler = _scheduler(max_tokens_in_flight=30)
    a, b, c = _added(scheduler, _sequence(10, 10), _sequence(10, 5), _sequence(1, 4))
    assert scheduler.schedule().prefill == [a]
    assert scheduler.reserved == a.budget == 20
    assert list(scheduler.waiting) == [b, c]
    scheduler.finish(a, "length")
    assert scheduler.schedule().prefill == [b, c]
    assert scheduler.reserved == b.budget + c.budget


def test_prompt_tokens_per_step_are_limited() -> None:
    scheduler = _scheduler(max_prefill_tokens=10)
    a, b, c = _added(scheduler, _sequence(6), _sequence(3), _sequence(4))
    assert scheduler.schedule().prefill == [a, b]  # 6 + 3 fits in 10; + 4 does not
    assert scheduler.schedule().prefill == [c]


def test_a_prompt_longer_than_the_step_limit_is_still_read_alone() -> None:
    scheduler = _scheduler(max_prefill_tokens=10)
    a, long, b = _added(scheduler, _sequence(2), _sequence(25), _sequence(2))
    assert scheduler.schedule().prefill == [a]
    assert scheduler.schedule().prefill == [long]
    assert scheduler.schedule().prefill == [b]


def test_decodes_are_the_sequences_admitted_in_earlier_steps() -> None:
    scheduler = _scheduler()
    (a,) = _added(scheduler, _sequence(3))
    assert scheduler.schedule().decode == []
    (b,) = _added(scheduler, _sequence(4))
    plan = scheduler.schedule()
    assert (plan.prefill, plan.decode) == ([b], [a])
    plan = scheduler.schedule()
    assert (plan.prefill, plan.decode) == ([], [a, b])
    scheduler.finish(a, "stop")
    assert scheduler.schedule().decode == [b]


def test_an_idle_plan_is_false() -> None:
    scheduler = _scheduler()
    assert not scheduler.schedule()
    _added(scheduler, _sequence(3))
    assert scheduler.schedule()


# --- refusals at add ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "words"),
    [
        (_sequence(0), "the prompt is empty"),
        (_sequence(40, 11), "51 in all, over this model's context of 50 tokens"),
        (_sequence(10, 50), "over this model's context"),
    ],
)
def test_what_could_never_run_is_refused_at_once(sequence: Sequence, words: str) -> None:
    scheduler = _scheduler()
    with pytest.raises(BadRequestError, match=words):
        scheduler.add(sequence)
    assert not scheduler.waiting


def test_a_budget_over_the_tokens_in_flight_is_refused() -> None:
    """It fits the model's context but could never be admitted: a 400, not a wait forever."""
    scheduler = _scheduler(max_tokens_in_flight=30)
    with pytest.raises(BadRequestError, match=r"\(31 tokens\) is over the 30 tokens"):
        scheduler.add(_sequence(21, 10))
    scheduler.add(_sequence(20, 10))


def test_a_full_waiting_queue_is_a_429() -> None:
    scheduler = _scheduler(max_waiting=2)
    _added(scheduler, _sequence(3), _sequence(3))
    with pytest.raises(OverloadedError, match="2 requests are already waiting") as refused:
        scheduler.add(_sequence(3))
    assert refused.value.status_code == 429
    scheduler.schedule()  # admitted sequences no longer wait
    scheduler.add(_sequence(3))


# --- finish -------------------------------------------------------------------------------


def test_finishing_a_running_sequence_frees_its_slot_and_budget() -> None:
    scheduler = _scheduler(max_sequences=1)
    a, b = _added(scheduler, _sequence(5), _sequence(5))
    scheduler.schedule()
    scheduler.finish(a, "stop")
    assert (a.state, a.finish_reason) == (State.FINISHED, "stop")
    assert scheduler.running == []
    assert scheduler.reserved == 0
    assert scheduler.schedule().prefill == [b]


def test_finishing_a_waiting_sequence_takes_it_off_the_queue() -> None:
    scheduler = _scheduler(max_sequences=1)
    a, b, c = _added(scheduler, _sequence(5), _sequence(5), _sequence(5))
    scheduler.schedule()
    scheduler.finish(b, "abort")
    assert list(scheduler.waiting) == [c]
    assert scheduler.reserved == a.budget
    scheduler.finish(a, "stop")
    assert scheduler.schedule().prefill == [c]


def test_finishing_twice_changes_nothing() -> None:
    scheduler = _scheduler()
    a, b = _added(scheduler, _sequence(5), _sequence(6))
    scheduler.schedule()
    scheduler.finish(a, "stop")
    scheduler.finish(a, "abort")
    assert a.finish_reason == "stop"
    assert scheduler.reserved == b.budget
    assert scheduler.running == [b]


def test_cache_tokens_used_counts_prompts_and_outputs_of_running_sequences() -> None:
    scheduler = _scheduler()
    a, b = _added(scheduler, _sequence(5), _sequence(6))
    scheduler.schedule()
    a.generated += [7, 8]
    assert scheduler.cache_tokens_used == 5 + 2 + 6
    scheduler.finish(b, "stop")
    assert scheduler.cache_tokens_used == 5 + 2
