"""A deadline interrupts whatever the main thread waits on, and nests."""

from __future__ import annotations

import threading
import time

import pytest

from app.foundation.deadline import DeadlineExceeded, deadline


def test_a_wait_past_its_deadline_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), deadline(0.2):
        time.sleep(5)
    assert time.monotonic() - started < 4  # interrupted, not slept out


def test_an_inner_deadline_never_extends_the_outer_one() -> None:
    with pytest.raises(DeadlineExceeded), deadline(0.2), deadline(5):
        time.sleep(5)


def _inner_then_wait() -> None:
    with deadline(0.1):
        pass
    time.sleep(5)


def test_the_outer_deadline_resumes_after_an_inner_one() -> None:
    with pytest.raises(DeadlineExceeded), deadline(0.5):
        _inner_then_wait()


def test_a_block_that_ends_in_time_leaves_no_timer_behind() -> None:
    with deadline(0.2):
        pass
    time.sleep(0.4)  # a timer left running would raise here


def test_outside_the_main_thread_it_bounds_nothing() -> None:
    finished = []

    def run() -> None:
        with deadline(0.01):
            time.sleep(0.1)
        finished.append(True)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert finished == [True]
