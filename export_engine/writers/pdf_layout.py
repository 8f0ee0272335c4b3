"""The statement's page: paper size, fonts, the running header and footer, and text that always prints.

DejaVu Sans Condensed (fonts/, Bitstream Vera licence) draws the text; a subset of Symbola (fonts/,
"free for any use", see fonts/LICENSE-Symbola.txt) draws the symbols and emoji DejaVu has no glyph
for. `cell()` falls back by itself (`set_fallback_fonts`); the table's fast `text()` path splits a
string into runs per font (`runs`). fpdf2 embeds only the glyphs a statement uses.
Every page carries the owner and period at the top, and the generation time, the export's reference
and "Page n of m" at the bottom. `pdf_tables` draws the statement's content onto these pages.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fpdf import FPDF

_FONTS = Path(__file__).with_name("fonts")
FONT = "DejaVu"
_SYMBOLS = "Symbola"
PAGE_SIZES = ("A4", "Letter")
MARGIN = 12.0
_BOTTOM = 16.0  # room kept for the footer


class Statement(FPDF):
    """An FPDF document with the statement's running header and footer."""

    def __init__(
        self,
        *,
        owner: str,
        period: str,
        generated: datetime,
        reference: str,
        page_size: str = "A4",
    ) -> None:
        if page_size not in PAGE_SIZES:
            raise ValueError(f"page size {page_size!r}; valid: {', '.join(PAGE_SIZES)}")
        super().__init__(orientation="P", unit="mm", format=page_size.lower())
        self.set_margins(MARGIN, MARGIN + 4, MARGIN)
        self.set_auto_page_break(auto=False)
        self.add_font(FONT, "", str(_FONTS / "DejaVuSansCondensed.ttf"))
        self.add_font(FONT, "B", str(_FONTS / "DejaVuSansCondensed-Bold.ttf"))
        self.add_font(_SYMBOLS, "", str(_FONTS / "Symbola-symbols.ttf"))
        self.set_fallback_fonts([_SYMBOLS], exact_match=False)
        self._main = set(getattr(self.fonts[FONT.lower()], "cmap", {}))
        self._symbols = set(getattr(self.fonts[_SYMBOLS.lower()], "cmap", {}))
        self.owner, self.period, self.reference = owner, period, reference
        self.generated = generated.strftime("%Y-%m-%d %H:%M UTC")
        self.set_title(f"Account statement {period}")
        self.set_author(owner)
        self.set_creator("export engine")
        self.alias_nb_pages("{nb}")
        self.on_new_page: list[object] = []  # callables run after the running header (pdf_tables)
        self._widths: dict[tuple[str, str, float], float] = {}

    # -- every page ---------------------------------------------------------------------------------
    def header(self) -> None:
        self.set_xy(MARGIN, 7)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(90, 90, 90)
        self.cell(self.epw / 2, 4, f"Account statement · {self.owner}")
        self.cell(self.epw / 2, 4, f"Period {self.period}", align="R")
        self.set_text_color(0, 0, 0)
        self.set_xy(MARGIN, self.t_margin)

    def footer(self) -> None:
        self.set_xy(MARGIN, -10)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(90, 90, 90)
        self.cell(self.epw * 0.75, 4, f"Generated {self.generated} · Reference {self.reference}")
        self.cell(self.epw * 0.25, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def ensure_room(self, height: float) -> bool:
        """Start a new page when `height` mm do not fit on this one; True when it did."""
        if self.get_y() + height <= self.h - _BOTTOM:
            return False
        style, size = self.font_style, self.font_size_pt
        self.add_page()
        for redraw in self.on_new_page:
            redraw()  # type: ignore[operator]
        self.set_font(FONT, style, size)
        return True

    # -- text that prints ---------------------------------------------------------------------------
    def runs(self, text: str) -> list[tuple[str, str]]:
        """`text` as (font family, run) pieces: DejaVu where it has the glyph, Symbola where only it has."""
        pieces: list[tuple[str, str]] = []
        for char in text:
            code = ord(char)
            family = _SYMBOLS if code not in self._main and code in self._symbols else FONT
            if pieces and pieces[-1][0] == family:
                pieces[-1] = (family, pieces[-1][1] + char)
            else:
                pieces.append((family, char))
        return pieces

    def width_of(self, text: str) -> float:
        """The printed width of `text` in the current style and size, fallback glyphs included (cached)."""
        key = (text, self.font_style, self.font_size_pt)
        width = self._widths.get(key)
        if width is None:
            style, size = self.font_style, self.font_size_pt
            width = 0.0
            for family, run in self.runs(text):
                self.set_font(family, style if family == FONT else "", size)
                width += self.get_string_width(run)
            self.set_font(FONT, style, size)
            if len(self._widths) > 50_000:
                self._widths.clear()
            self._widths[key] = width
        return width

    def draw(self, x: float, baseline: float, text: str) -> None:
        """`text()` at (x, baseline), each run in the font that has its glyphs."""
        pieces = self.runs(text)
        if len(pieces) == 1 and pieces[0][0] == FONT:
            self.text(x, baseline, text)  # the common case: one call, ~6x cheaper than cell()
            return
        style, size = self.font_style, self.font_size_pt
        for family, run in pieces:
            self.set_font(family, style if family == FONT else "", size)
            self.text(x, baseline, run)
            x += self.get_string_width(run)
        self.set_font(FONT, style, size)

    def fitted(self, text: str, width: float) -> str:
        """The text on one line within `width` mm, shortened with an ellipsis when it does not fit."""
        text = " ".join(text.split())  # a newline inside a description stays on the row
        room = width - 2 * self.c_margin
        if self.width_of(text) <= room:
            return text
        while text and self.width_of(text + "…") > room:
            text = text[: max(len(text) - max(len(text) // 8, 1), 0)]
        return text + "…"
