"""Plain-text tables a person reads at a glance."""

from __future__ import annotations

from typing import Any, Sequence

from wcwidth import wcswidth


def short_list(names: Sequence[str], shown: int = 5) -> str:
    """The first `shown` names and how many more: one readable line for 3 classes or 1,000."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _cell(v: Any, decimals: int | None = None) -> str:
    if isinstance(v, float):
        if decimals is not None:
            return f"{v:.{decimals}f}"
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def display_width(text: str) -> int:
    """Terminal columns `text` takes: CJK characters and emoji take two, combining marks none."""
    width = wcswidth(text)
    return len(text) if width < 0 else width  # a control character: wcwidth gives up, len() is the best guess


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


class Footnotes:
    """Long cell texts (an error and its fix) shown as [n] in the table and each written once under it."""

    def __init__(self) -> None:
        self.texts: dict[str, int] = {}

    def cite(self, text: str, lead: str = "") -> str:
        """`lead` followed by the note number of `text` (a text cited again keeps its number)."""
        return f"{lead}[{self.texts.setdefault(text, len(self.texts) + 1)}]"

    def below(self, table: str) -> str:
        """The table, then a blank line and the notes (the table alone when nothing was cited)."""
        return "\n".join([table, ""] + [f"[{n}] {t}" for t, n in self.texts.items()]) if self.texts else table


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
                 decimals: int | None = None) -> str:
    """Format rows under headers; numbers right-aligned, text left-aligned, floats to `decimals` places if given."""
    # A column of scores written 0.9876, 1, 0.95 reads as three precisions: `decimals` writes them alike.
    cells = [[_cell(v, decimals) for v in row] for row in rows]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
               and bool(rows) for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(_pad(v, w, num) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [title] if title else []
    out += [line(list(headers)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)
