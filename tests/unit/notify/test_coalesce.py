"""Coalescing per event class and the token bucket (pure, time passed in)."""

from __future__ import annotations

from nautilus_hmm.notify.coalesce import Coalescer, TokenBucket, retry_delay_s
from nautilus_hmm.notify.events import Notice


def notice(i: int, cls: str = "risk_denials") -> Notice:
    return Notice(cls, f"t{i}", f"denial {i}", "warning")


def test_a_lone_notice_goes_out_alone_after_the_gather_delay() -> None:
    c = Coalescer("ops", gather_s=1.0, window_s=60.0, examples=3)
    c.add(notice(1), 100.0)
    assert c.due(100.5) == []
    [out] = c.due(101.0)
    assert (out.title, out.body, out.merged) == ("t1", "denial 1", 1)
    assert c.coalesced == 0


def test_a_storm_of_1000_denials_in_the_gather_delay_is_one_message_that_counts_them() -> None:
    c = Coalescer("ops", gather_s=1.0, window_s=60.0, examples=3)
    for i in range(1000):
        c.add(notice(i), 100.0 + i * 0.0005)
    [out] = c.due(101.0)
    assert out.body.startswith("1000 risk denials in 1 s, e.g. denial 0; denial 1; denial 2")
    assert out.merged == 1000 and c.coalesced == 999


def test_notices_of_a_hot_class_wait_for_the_end_of_its_window() -> None:
    c = Coalescer("ops", gather_s=1.0, window_s=60.0, examples=2)
    c.add(notice(0), 0.0)
    assert len(c.due(1.0)) == 1
    for i in range(1, 6):
        c.add(notice(i), 1.0 + i)
    assert c.due(60.9) == []
    [out] = c.due(61.0)
    assert out.body.startswith("5 risk denials in 60 s, e.g. denial 1; denial 2")
    # the window ended with a message: a new window; an empty one makes the class quiet again
    assert c.due(200.0) == []
    c.add(notice(9), 200.0)
    assert c.next_due_s() == 201.0


def test_classes_are_coalesced_apart() -> None:
    c = Coalescer("ops", gather_s=1.0, window_s=60.0, examples=3)
    c.add(notice(1), 0.0)
    c.add(notice(2, "fills"), 0.0)
    assert sorted(o.event_class for o in c.due(1.0)) == ["fills", "risk_denials"]


def test_a_forced_flush_sends_what_is_held_now() -> None:
    c = Coalescer("ops", gather_s=5.0, window_s=60.0, examples=3)
    c.add(notice(1), 0.0)
    assert len(c.due(0.1, force=True)) == 1


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    b = TokenBucket(rate_per_s=1.0, burst=2, now_s=0.0)
    assert b.try_take(0.0) and b.try_take(0.0)
    assert not b.try_take(0.0)
    assert b.ready_at_s(0.0) == 1.0
    assert not b.try_take(0.5)
    assert b.try_take(1.0)


def test_retry_delay_doubles_up_to_its_cap() -> None:
    assert [retry_delay_s(a, 2.0, 10.0) for a in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
