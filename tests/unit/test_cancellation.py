"""Cancel tokens (a linked one cancelled alone and with the job) and the sections a
signal must not cut (shielded, committing)."""

from __future__ import annotations

import threading

import pytest

from respaldo import cancellation
from respaldo.cancellation import CancelToken, cancellable, linked

pytestmark = pytest.mark.unit


def test_a_linked_token_is_cancelled_alone_and_with_the_job() -> None:
    job = CancelToken()
    killed: list[str] = []
    with cancellable(job):
        with linked() as block:
            assert cancellation.current() is block
            cancellation.on_cancel(lambda: killed.append("pg_dump"))
            block.cancel("the count failed")
        assert cancellation.current() is job
        assert killed == ["pg_dump"] and not job.cancelled
        with linked() as block:
            cancellation.on_cancel(lambda: killed.append("second"))
            job.cancel("stopped by ana")
            assert block.cancelled and block.reason == "stopped by ana"
    assert killed == ["pg_dump", "second"]


def test_a_linked_token_outside_any_job_and_after_its_block() -> None:
    with linked() as block:
        assert cancellation.current() is block
    assert cancellation.current() is None
    job = CancelToken()
    with cancellable(job):
        with linked() as block:
            pass
        job.cancel("later")  # the block has ended: its token is not told any more
    assert not block.cancelled


def _signal(text: str = "terminated by SIGTERM") -> None:
    """What the CLI's handler does with a signal (cli/main.py, _interrupt)."""
    exc = KeyboardInterrupt(text)
    if not cancellation.hold_interrupt(exc):
        raise exc


def test_a_signal_past_the_point_of_no_return_is_taken_not_raised() -> None:
    taken = cancellation.signals_taken()
    with cancellation.committing() as committed:
        cancellation.no_return()  # the manifest is being written
        _signal()  # held
        done = True  # the record completed
    assert done and committed.passed
    assert committed.signal == "terminated by SIGTERM"
    assert cancellation.signals_taken() == taken + 1


def test_a_signal_before_the_point_of_no_return_is_raised() -> None:
    with pytest.raises(KeyboardInterrupt), cancellation.committing() as committed:
        _signal()
    assert not committed.passed and committed.signal is None


def test_a_second_signal_past_the_point_of_no_return_is_raised_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), cancellation.committing() as committed:
        cancellation.no_return()
        _signal()
        _signal()
    # The first stays unraised; the caller sees the work may stand (passed).
    assert committed.passed and committed.signal == "terminated by SIGTERM"
    _signal_raises_again()


def _signal_raises_again() -> None:
    # Nothing is held any more once the block is left.
    with pytest.raises(KeyboardInterrupt):
        _signal()


def test_no_return_outside_a_committing_block_holds_nothing() -> None:
    cancellation.no_return()
    _signal_raises_again()


def test_a_shield_in_another_thread_holds_no_signal() -> None:
    # A thread pruning (as a scheduler's pool would): the main thread's Ctrl-C is raised
    # there at once, and nothing is raised in the thread when its shield ends.
    inside, done = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def worker() -> None:
        try:
            with cancellation.shielded():
                inside.set()
                done.wait()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        inside.wait()
        with pytest.raises(KeyboardInterrupt):
            _signal("")
    finally:
        done.set()
        thread.join()
    assert raised == []
