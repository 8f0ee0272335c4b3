"""The progress tap (pass-through bytes, rows with and without quoted newlines) and per-batch counts."""

from __future__ import annotations

import io

import pytest

from export_engine.streaming import ProgressTap, RowProgress, Throttle
from export_engine.streaming.progress import csv_row_ends


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        (b"a,b\n1,2\n", 2),
        (b'1,"Standing order\nmonthly"\n2,x\n', 2),
        (b'1,"Refund, ""partial"""\n2,"a\n\nb"\n', 2),
        (b'1,""\n2,"""\n"""\n', 2),  # an empty quoted field; a field that is a quote, a newline, a quote
        (b"", 0),
    ],
)
def test_csv_row_ends_skips_newlines_inside_quotes(text, rows):
    assert csv_row_ends(text) == rows


def test_tap_passes_bytes_through_and_reports_rows():
    sink = io.BytesIO()
    reports: list[int] = []
    tap = ProgressTap(sink, reports.append, interval=0.0, csv_quoting=True)
    chunk = b'1,"Standing order\nmonthly"\n2,plain\n'
    buffered = io.BufferedWriter(tap, buffer_size=64)
    for _ in range(10):
        buffered.write(chunk)
    buffered.flush()
    assert sink.getvalue() == chunk * 10
    assert tap.rows == 20  # 30 newlines, 10 of them inside quotes
    assert reports and reports[-1] == 20


def test_tap_scales_bytes_by_the_sampled_rows_per_byte():
    sink = io.BytesIO()
    tap = ProgressTap(sink, lambda rows: None, interval=3600, csv_quoting=True)
    row_pair = b'1,"Standing order\nmonthly"\n2,plain\n'
    for _ in range(10):  # only the first chunk is sampled: no report is due within the hour
        tap.write(row_pair * 4)
    assert tap.rows == 80


def test_tap_without_callback_only_forwards():
    sink = io.BytesIO()
    tap = ProgressTap(sink, None)
    tap.write(b"1\n2\n")
    assert sink.getvalue() == b"1\n2\n"
    assert tap.bytes == 4


def test_row_progress_reports_the_running_total_at_most_once_per_interval():
    reports: list[int] = []
    progress = RowProgress(reports.append, interval=3600.0)
    for _ in range(5):
        progress.add(1000)
    assert progress.rows == 5000
    assert reports == []  # the interval has not passed: nothing reported, nothing slowed
    eager = RowProgress(reports.append, interval=0.0)
    eager.add(10)
    eager.add(5)
    assert reports == [10, 15]


def test_row_progress_without_a_callback_only_counts():
    progress = RowProgress(None, interval=0.0)
    progress.add(7)
    assert progress.rows == 7


def test_throttle_is_due_once_per_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("export_engine.streaming.progress.time.monotonic", lambda: clock[0])
    throttle = Throttle(1.0)
    assert not throttle.due()  # the first report comes after one interval, not at once
    clock[0] = 101.0
    assert throttle.due()
    assert not throttle.due()  # at most once: the next one is an interval later
    clock[0] = 101.9
    assert not throttle.due()
    clock[0] = 102.5
    assert throttle.due()
