"""Reading a PDF statement as a person does: its text through pypdf (not the library that wrote it),
the numbers parsed from that text, and the glyphs of the fonts embedded in the file."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

from fontTools.ttLib import TTFont
from pypdf import PdfReader

_AMOUNT = r"-?[\d,]+\.\d\d"


def page_texts(body: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(body)).pages]


def parse_sections(pages: list[str]) -> dict[str, dict[str, Any]]:
    """Each section's opening, row amounts and balances, closing and totals, read from the text alone."""
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in "\n".join(pages).splitlines():
        if title := re.match(r"(acct-\S+) · ([A-Z]{3}) · \S+ to \S+( \(continued\))?$", line):
            key = f"{title[1]} {title[2]}"
            current = sections.setdefault(key, {"currency": title[2], "amounts": [], "balances": []})
        elif current is None:
            continue
        elif opening := re.fullmatch(rf"Opening balance ({_AMOUNT}) ([A-Z]{{3}})", line):
            current["opening"], current["opening_currency"] = Decimal(opening[1].replace(",", "")), opening[2]
        elif closing := re.fullmatch(rf"Closing balance ({_AMOUNT}) ([A-Z]{{3}})", line):
            current["closing"], current["closing_currency"] = Decimal(closing[1].replace(",", "")), closing[2]
        elif totals := re.fullmatch(rf"Transactions ([\d,]+) Money in ({_AMOUNT}) (\w+) Money out ({_AMOUNT}) "
                                    rf"(\w+) Net ({_AMOUNT}) (\w+)", line):  # fmt: skip
            current["totals"] = totals.groups()
            current = None
        elif row := re.match(rf"\d{{4}}-\d\d-\d\d .* ({_AMOUNT}) (\S+) ({_AMOUNT}) (\S+)$", line):
            assert row[2] == row[4] == current["currency"], line  # every amount carries its currency
            current["amounts"].append(Decimal(row[1].replace(",", "")))
            current["balances"].append(Decimal(row[3].replace(",", "")))
    return sections


def assert_reconciles(section: dict[str, Any]) -> None:
    """Opening + rows = closing, every running balance one step from the last, totals from the rows."""
    assert section["opening_currency"] == section["closing_currency"] == section["currency"]
    balance = section["opening"]
    for amount, after in zip(section["amounts"], section["balances"], strict=True):
        balance += amount
        assert balance == after
    assert section["opening"] + sum(section["amounts"]) == section["closing"] == balance
    count, money_in, _, money_out, _, net, _ = section["totals"]
    assert int(count.replace(",", "")) == len(section["amounts"])
    assert Decimal(money_in.replace(",", "")) == sum(a for a in section["amounts"] if a >= 0)
    assert Decimal(money_out.replace(",", "")) == sum(a for a in section["amounts"] if a < 0)
    assert Decimal(net.replace(",", "")) == sum(section["amounts"])


def embedded_glyphs(body: bytes) -> dict[str, set[str]]:
    """Font name -> the characters its embedded (subset) font draws with a glyph that has outlines."""
    found: dict[str, set[str]] = {}
    for page in PdfReader(io.BytesIO(body)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            name = str(font["/BaseFont"])
            if name in found:
                continue
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            tt = TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
            outlines = tt["glyf"]
            found[name] = {
                chr(code)
                for code, glyph in tt.getBestCmap().items()
                if glyph != ".notdef" and outlines[glyph].numberOfContours != 0
            }
    return found
