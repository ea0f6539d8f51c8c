"""report: section: the monthly client report's names, and whether the daemon writes it itself."""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.schema import setting

MAX_NAME = 120  # a name on a report's first line, not a paragraph


def _check_name(value: str) -> str | None:
    if not value.strip():
        return "must not be empty (leave the key out to use the default)"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(value)}"
    if any(ord(c) < 32 for c in value):
        return "must be one line of text (no control characters)"
    return None


@dataclass(frozen=True)
class ReportConfig:
    msp_name: str = setting("Your IT provider", doc="who looks after the network: the report's sender",
                            check=_check_name)
    client_name: str = setting("Your business", doc="whose network it is: the report's reader", check=_check_name)
    monthly: bool = setting(True, doc="the daemon writes last month's report to STATE/reports/YYYY-MM.html on the 1st")
