"""tests/support/threads.CheckedThread: a thread's failure reaches the test that joins it."""

from __future__ import annotations

import threading

import pytest

from tests.support.threads import start_thread


def test_join_raises_what_the_thread_raised() -> None:
    def boom() -> None:
        raise KeyError("reason")

    thread = start_thread(boom, name="reader")
    with pytest.raises(AssertionError, match=r"thread reader failed: KeyError\('reason'\)") as info:
        thread.join(timeout=10)
    assert isinstance(info.value.__cause__, KeyError)


def test_join_fails_while_the_thread_still_runs_then_passes_once_it_ended() -> None:
    release = threading.Event()
    seen: list[int] = []
    thread = start_thread(lambda n: (release.wait(30), seen.append(n)), 7, name="slow")
    with pytest.raises(AssertionError, match=r"thread slow still running after 0\.01 s"):
        thread.join(timeout=0.01)
    release.set()
    thread.join(timeout=30)
    assert seen == [7] and thread.daemon
