"""The body-read deadline thread (`estate.serving.bodies.Deadlines`): every watched read
ends at its own deadline, whatever order the deadlines arrive in, and a read released
in time is never ended."""

from __future__ import annotations

import io
import threading
import time

from estate.serving.bodies import BoundedInput, Deadlines


def _body() -> BoundedInput:
    return BoundedInput(io.BytesIO(b"{}"), 3)


def _expired_within(body: BoundedInput, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if body.timed_out:
            return True
        time.sleep(0.005)
    return body.timed_out


def test_an_earlier_deadline_after_a_later_one_still_ends_on_time() -> None:
    """The thread sleeps until the nearest deadline; a nearer one must wake it."""
    deadlines = Deadlines()
    late, early = _body(), _body()
    deadlines.watch(30.0, None, late)
    time.sleep(0.05)  # the thread is asleep until the 30 s deadline
    started = time.monotonic()
    deadlines.watch(0.1, None, early)
    assert _expired_within(early, 5.0)
    assert time.monotonic() - started < 2.0
    assert not late.timed_out


def test_a_deadline_after_an_idle_spell_ends_on_time() -> None:
    """With nothing watched the thread sleeps without a timeout; a new read wakes it."""
    deadlines = Deadlines()
    first = _body()
    key = deadlines.watch(30.0, None, first)
    deadlines.release(key)  # answered in time
    time.sleep(0.05)
    second = _body()
    deadlines.watch(0.1, None, second)
    assert _expired_within(second, 5.0)
    assert not first.timed_out


def test_reads_in_arrival_order_end_one_after_another() -> None:
    """The common case (one read deadline per process): later deadlines do not wake the
    thread, and each still ends at its own time while the earlier ones are released."""
    deadlines = Deadlines()
    bodies = [_body() for _ in range(3)]
    keys = [deadlines.watch(0.15 + 0.1 * i, None, b) for i, b in enumerate(bodies)]
    deadlines.release(keys[1])  # answered in time: never ended
    assert _expired_within(bodies[2], 5.0)
    assert bodies[0].timed_out
    assert not bodies[1].timed_out


def test_many_threads_watching_at_once_all_end() -> None:
    deadlines = Deadlines()
    bodies = [_body() for _ in range(40)]
    workers = [
        threading.Thread(target=deadlines.watch, args=(0.05 + 0.005 * i, None, b))
        for i, b in enumerate(bodies)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(_expired_within(b, 5.0) for b in bodies)
