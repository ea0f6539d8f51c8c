"""A series source: `timestamp,value` CSV files (the NAB layout, and what `sitevigil score` reads).

Timestamps are ISO 8601 (`2014-04-01 00:05:00`, `2014-04-01T00:05:00Z`, with an offset or fractional
seconds) or plain Unix seconds; naive times are taken as UTC. Values are floats; empty, `nan` and `inf`
values are kept as NaN/inf (the scoring kernel treats them as missing), anything else that is not a
number is an error. Errors name the file and the line, and say what to do.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np


class SeriesFileError(ValueError):
    """A CSV series file that cannot be read; the message says which file, which line and why."""


@dataclass(frozen=True)
class Series:
    path: str
    timestamp_text: list[str]      # as written in the file, so output rows can repeat them exactly
    value_text: list[str]
    ts: np.ndarray                 # float64 Unix seconds
    values: np.ndarray             # float64


def parse_timestamp(text: str) -> float:
    """Unix seconds from an ISO 8601 timestamp or a number of seconds; ValueError when neither."""
    s = text.strip()
    try:
        seconds = float(s)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise ValueError(f"timestamp {text!r} is not a finite number of seconds")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 (e.g. 2014-04-01 00:05:00) "
                         "nor Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_value(text: str) -> float:
    s = text.strip()
    if s == "":
        return math.nan
    return float(s)  # accepts nan/inf spellings; raises ValueError otherwise


def read_series(path: str) -> Series:
    """Read one `timestamp,value` CSV (a header row is optional)."""
    texts: list[str] = []
    value_texts: list[str] = []
    ts: list[float] = []
    values: list[float] = []
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise SeriesFileError(f"{path}: cannot open: {exc.strerror}") from None
    with f:
        try:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != 2:
                    raise SeriesFileError(f"{path}:{lineno}: expected 2 columns (timestamp,value), got {len(row)}")
                if lineno == 1 and row[0].strip().lower() == "timestamp":
                    continue  # header
                try:
                    t = parse_timestamp(row[0])
                except ValueError as exc:
                    raise SeriesFileError(f"{path}:{lineno}: bad {exc}") from None
                try:
                    v = parse_value(row[1])
                except ValueError:
                    raise SeriesFileError(f"{path}:{lineno}: value {row[1]!r} is not a number") from None
                texts.append(row[0])
                value_texts.append(row[1])
                ts.append(t)
                values.append(v)
        except UnicodeDecodeError as exc:
            raise SeriesFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise SeriesFileError(f"{path}: malformed CSV: {exc}") from None
    return Series(path, texts, value_texts, np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64))
