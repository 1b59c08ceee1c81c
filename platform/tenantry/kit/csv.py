"""CSV cells that are safe to open in a spreadsheet."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); a leading apostrophe makes it text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One CSV cell: empty for None, ISO 8601 for dates, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        # As the JSON answers write it (pydantic): UTC as `Z`, not `+00:00`.
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
