"""The read-ahead iterator: order, errors from either side, and the reader always joined."""

from __future__ import annotations

import threading

import pytest

from export_engine.streaming.prefetch import prefetched


def test_items_come_in_order_transformed():
    assert list(prefetched(range(100), lambda n: n * n, depth=2)) == [n * n for n in range(100)]


def test_empty_source():
    assert list(prefetched([], str)) == []


def test_reader_error_reaches_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ConnectionResetError("server closed the connection")

    seen = []
    with pytest.raises(ConnectionResetError, match="server closed"):
        for item in prefetched(items(), lambda n: n):
            seen.append(item)
    assert seen == [1, 2]


def test_consumer_error_stops_and_joins_the_reader():
    """The caller closes the cursor right after: no reader thread may still be using it."""
    produced = []

    def items():
        for n in range(1_000_000):
            produced.append(n)
            yield n

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="upload failed"):
        for item in prefetched(items(), lambda n: n, depth=1):
            if item == 3:
                raise RuntimeError("upload failed")
    assert threading.active_count() == before
    assert len(produced) <= 3 + 3  # the reader never ran away: the queue holds one item ahead


def test_reader_runs_ahead_while_the_consumer_works():
    second_read = threading.Event()

    def read(n):
        if n == 1:
            second_read.set()
        return n

    for n in prefetched(range(3), read, depth=1):
        if n == 0:  # item 1 is read while item 0 is still with the consumer (a hang guard, not a timing)
            assert second_read.wait(timeout=30)
