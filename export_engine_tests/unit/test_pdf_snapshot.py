"""Page 1 of a fixed statement, rendered by PDFium (not the library that wrote it), against a reviewed
snapshot: what a person sees, within a tolerance for anti-aliasing differences between renderers.

After an intended change of the layout, re-take the snapshot and look at it before committing:
`UPDATE_PDF_SNAPSHOT=1 pytest export_engine_tests/unit/test_pdf_snapshot.py`.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2
import pytest
from PIL import Image, ImageChops

from export_engine.writers import write_pdf
from export_engine_tests.unit.test_pdf_writer import PARAMS, _rows, _Source

SNAPSHOT = Path(__file__).with_name("snapshots") / "pdf-statement-page1.png"
SCALE = 100 / 72  # 100 dpi
DIFFERENT = 64  # a pixel differs when its grey level moved more than this (of 255)
AT_MOST = 0.003  # ... and at most this share of the page's pixels may differ


def _page_one(body: bytes) -> Image.Image:
    page = pypdfium2.PdfDocument(body)[0]
    return page.render(scale=SCALE, grayscale=True).to_pil().convert("L")


def test_page_one_looks_like_the_reviewed_snapshot():
    rows = _rows(40, "acct-7-1", "EUR") + _rows(12, "acct-7-2", "USD", first_id=100)
    sink = io.BytesIO()
    write_pdf(_Source(rows), None, PARAMS, sink, generated=datetime(2026, 12, 3, 9, 30, tzinfo=UTC))
    rendered = _page_one(sink.getvalue())
    if os.environ.get("UPDATE_PDF_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        rendered.save(SNAPSHOT, optimize=True)
        pytest.skip(f"snapshot re-taken: review {SNAPSHOT} before committing it")
    reviewed = Image.open(SNAPSHOT).convert("L")
    assert rendered.size == reviewed.size
    diff = ImageChops.difference(rendered, reviewed).point(lambda level: 255 if level > DIFFERENT else 0)
    changed = diff.histogram()[255] / (diff.width * diff.height)
    assert changed <= AT_MOST, f"{changed:.2%} of page 1 differs from {SNAPSHOT.name} (box {diff.getbbox()})"
