"""A linked token: cancelled alone without cancelling the job, and with the job."""

from __future__ import annotations

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
