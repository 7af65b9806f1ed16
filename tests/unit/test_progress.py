"""obs.progress: plain lines off a terminal (paced by an injected clock), tqdm on one, never in the way."""

from __future__ import annotations

import io

import pytest

from nautilus_hmm.obs.progress import Progress, no_progress, progress_factory


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_each_tenth_of_the_work_and_one_at_the_end_when_not_a_tty() -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(100, "backtest", unit="bars", stream=out, clock=clock) as p:
        for _ in range(100):
            clock.t += 0.01
            p.update()
    got = lines(out)
    assert len(got) == 10  # 10 %, 20 %, ... 90 %, then the closing line
    assert got[0].startswith("backtest: 10/100 bars (10%), 0.1 s, 100 bars/s, ~0.9 s left")
    assert got[4].startswith("backtest: 50/100 bars (50%)")
    assert got[-1] == "backtest: 100/100 bars (100%) done in 1.0 s, 100 bars/s"


def test_a_line_every_every_s_of_the_injected_clock_between_tenths() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(1_000_000, "train", unit="fits", stream=out, clock=clock, every_s=5.0)
    p.update(10)
    assert lines(out) == []  # neither a tenth nor 5 s yet
    clock.t += 4.9
    p.update(10)
    assert lines(out) == []
    clock.t += 0.1
    p.update(10)
    assert lines(out) == ["train: 30/1000000 fits (0%), 5.0 s, 6.00 fits/s, ~46 h 17 min left"]
    clock.t += 1.0
    p.update(10)
    assert len(lines(out)) == 1  # the 5 s count again from the last line


def test_a_big_step_over_several_tenths_writes_one_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(10, "evaluate", unit="steps", stream=out, clock=clock)
    clock.t += 2
    p.set(7)
    assert lines(out) == ["evaluate: 7/10 steps (70%), 2.0 s, 3.50 steps/s, ~0.9 s left"]
    p.set(5)  # never backwards
    assert p.done == 7


def test_unknown_total_reports_counts_by_time_only() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(None, "replay", unit="bars", stream=out, clock=clock)
    p.update(500)
    assert lines(out) == []
    clock.t += 6
    p.update(100)
    p.close()
    assert lines(out) == ["replay: 600 bars, 6.0 s, 100 bars/s", "replay: 600 bars done in 6.0 s, 100 bars/s"]


def test_an_exception_inside_the_block_says_where_the_work_stopped() -> None:
    out, clock = io.StringIO(), FakeClock()
    with pytest.raises(RuntimeError), Progress(40, "evaluate", unit="steps", stream=out, clock=clock) as p:
        p.update(3)
        clock.t += 1.5
        raise RuntimeError("fold failed")
    assert lines(out)[-1] == "evaluate: 3/40 steps (8%) stopped after 1.5 s, 2.00 steps/s"


def test_disabled_progress_writes_nothing() -> None:
    out = io.StringIO()
    with Progress(10, "backtest", stream=out, enabled=False) as p:
        p.update(10)
    make = progress_factory(enabled=False, stream=out)
    with make(5, "train") as q:
        q.update(5)
    with no_progress(3, "x") as r:
        r.update(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar_not_lines() -> None:
    out = Tty()
    with Progress(50, "backtest", unit="bars", stream=out) as p:
        p.update(50)
    text = out.getvalue()
    assert "\r" in text and "50/50" in text and "backtest" in text
    assert "done in" not in text  # the plain closing line is the non-terminal form


def test_a_closed_stream_turns_progress_off_and_the_work_goes_on() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(10, "backtest", stream=out, clock=clock)
    out.close()
    p.update(5)  # would write the 50 % line: ValueError on a closed file
    assert p.enabled is False
    p.update(5)
    p.close()
    assert p.done == 10


def test_a_writer_whose_reader_left_turns_progress_off() -> None:
    class BrokenPipe(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    p = Progress(10, "train", stream=BrokenPipe(), clock=FakeClock())
    p.update(10)
    p.close()
    assert p.enabled is False and p.done == 10


def test_set_total_and_description_show_in_the_next_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    p = Progress(100, "train", unit="fits", stream=out, clock=clock)
    p.set_total(4)
    p.set_description("train micro[0]")
    clock.t += 1
    p.update(2)
    assert lines(out) == ["train micro[0]: 2/4 fits (50%), 1.0 s, 2.00 fits/s, ~1.0 s left"]


@pytest.mark.parametrize(("kw", "field"), [({"every_fraction": 0.0}, "every_fraction"),
                                           ({"every_fraction": 1.5}, "every_fraction"),
                                           ({"every_s": 0}, "every_s")])
def test_bad_pacing_names_the_argument(kw: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Progress(10, "x", stream=io.StringIO(), **kw)
