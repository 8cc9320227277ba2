from __future__ import annotations

import gc
import threading
from collections.abc import Generator, Iterator

import pytest

from inboxlab.settings import Settings
from serving.batch import BatchDecider, paused_gc
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from tests.serving.test_batch import make_engine, mixed_audience


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_paused_inside_and_back_after() -> None:
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_restores_the_collector() -> None:
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused() -> None:
    gc.disable()
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_pauses_of_two_threads_end_with_the_collector_enabled() -> None:
    # The writer thread's pause starts inside the chunk's and ends after it.
    inside, leave = threading.Event(), threading.Event()

    def writer() -> None:
        with paused_gc():
            inside.set()
            leave.wait(5)

    with paused_gc():
        thread = threading.Thread(target=writer)
        thread.start()
        assert inside.wait(5)
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_batch_left_after_its_first_lines_leaves_the_collector_enabled(
    settings: Settings, sqlite_store: DecisionStore, models: ModelSet
) -> None:
    decider = BatchDecider(make_engine(settings, sqlite_store, models), chunk_size=5)
    lines = decider.lines(mixed_audience())
    assert isinstance(lines, Generator)
    assert next(lines)  # the client reads one chunk of lines, then leaves
    assert gc.isenabled()
    lines.close()
    assert gc.isenabled()
    assert len(decider.decide(mixed_audience())) == len(mixed_audience())
    assert gc.isenabled()
