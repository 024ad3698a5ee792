"""Users as CSV: RFC 4180 quoting, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

HEADER = ("id", "email", "name", "created_at")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # OWASP "CSV injection": a leading quote makes spreadsheets show the text, not run it.
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def csv_bytes(rows: Iterable[Sequence[Any]], *, header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode()
