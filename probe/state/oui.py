"""Vendor of a network card from its MAC address (the IEEE registries), and what kind of address it is.

The registries are read at runtime from Debian's ieee-data (/usr/share/ieee-data/*.csv) when that
package is installed, else from the compact copy shipped in probe/data/oui.tsv.gz (made from the same
files by scripts/gen_oui_table.py; see probe/data/README.md). Lookups take the longest registered
prefix: MA-S/IAB (36 bits), then MA-M (28 bits), then MA-L (24 bits).

Locally administered addresses (the U/L bit set) are not in any registry: software picks them. Phones,
laptops and tablets pick a random one per network ("private Wi-Fi address"), hypervisors and container
runtimes use fixed local prefixes. Both are recognised and said as such rather than left "unknown".
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterable

_log = logging.getLogger(__name__)

IEEE_DATA_DIR = "/usr/share/ieee-data"
# Registry file -> hex digits of its assignments.
IEEE_FILES = (("oui.csv", 6), ("mam.csv", 7), ("oui36.csv", 9), ("iab.csv", 9))
PACKAGED_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "oui.tsv.gz")

# Locally administered prefixes that software assigns on purpose (not random): prefix -> who.
SOFTWARE_LOCAL_PREFIXES = {
    "525400": "QEMU/KVM virtual NIC",
    "0242": "Docker container",
    "0a0027": "VirtualBox host-only adapter",
    "02004c": "Microsoft loopback adapter",
}

_HEX = re.compile(r"[0-9a-f]{12}")


class MacError(ValueError):
    pass


def normalise_mac(mac: str | bytes) -> str:
    """"AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", b'\\xaa...' -> "aa:bb:cc:dd:ee:ff"; ValueError when not a MAC."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise MacError(f"invalid MAC address: {len(mac)} bytes (expected 6)")
        return ":".join(f"{b:02x}" for b in mac)
    digits = re.sub(r"[:\-.\s]", "", str(mac)).lower()
    if not _HEX.fullmatch(digits):
        raise MacError(f"invalid MAC address {mac!r} (expected six hex octets such as aa:bb:cc:dd:ee:ff)")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class MacInfo:
    mac: str
    vendor: str | None       # registered organisation, or the software that assigns a local prefix
    kind: str                # "global" (IEEE registered), "local" (locally administered), "multicast"
    randomised: bool         # locally administered and not a known software prefix: likely a private address

    @property
    def label(self) -> str:
        """What to show in a vendor column."""
        if self.vendor:
            return self.vendor
        if self.kind == "multicast":
            return "(multicast address)"
        if self.randomised:
            return "(randomised MAC)"
        if self.kind == "local":
            return "(locally administered)"
        return "(unregistered)"


def classify_mac(mac: str) -> tuple[str, bool, str | None]:
    """(kind, randomised, software) from the address bits alone."""
    first = int(mac[0:2], 16)
    if first & 0x01:
        return "multicast", False, None
    if not first & 0x02:
        return "global", False, None
    digits = mac.replace(":", "")
    for prefix, who in SOFTWARE_LOCAL_PREFIXES.items():
        if digits.startswith(prefix):
            return "local", False, who
    return "local", True, None


class OuiTable:
    """Longest-prefix lookup over the IEEE registries."""

    def __init__(self, entries: dict[str, str] | None = None, *, source: str = "(empty)"):
        self._by_len: dict[int, dict[str, str]] = {}
        for prefix, name in (entries or {}).items():
            self._by_len.setdefault(len(prefix), {})[prefix.lower()] = name
        self._lengths = sorted(self._by_len, reverse=True)
        self.source = source

    def __len__(self) -> int:
        return sum(len(d) for d in self._by_len.values())

    @classmethod
    def load(cls, ieee_dir: str | None = IEEE_DATA_DIR, packaged: str = PACKAGED_TABLE) -> "OuiTable":
        if ieee_dir and os.path.exists(os.path.join(ieee_dir, "oui.csv")):
            try:
                return cls(dict(read_ieee_csvs(ieee_dir)), source=ieee_dir)
            except (OSError, csv.Error, UnicodeDecodeError) as exc:
                _log.warning("cannot read IEEE registries in %s (%s); using the packaged table", ieee_dir, exc)
        try:
            return cls(dict(read_table(packaged)), source=os.path.normpath(packaged))
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            _log.warning("no MAC vendor table: %s: %s (install Debian's ieee-data)", packaged, exc)
            return cls()

    def vendor(self, mac: str) -> str | None:
        digits = mac.replace(":", "").lower()
        for n in self._lengths:
            name = self._by_len[n].get(digits[:n])
            if name is not None:
                return name
        return None

    def lookup(self, mac: str | bytes) -> MacInfo:
        mac = normalise_mac(mac)
        kind, randomised, software = classify_mac(mac)
        vendor = software if kind == "local" else (self.vendor(mac) if kind == "global" else None)
        return MacInfo(mac, vendor, kind, randomised)


def read_ieee_csvs(ieee_dir: str) -> Iterable[tuple[str, str]]:
    """(hex prefix, organisation) from the IEEE registry CSVs (Registry,Assignment,Organization Name,...)."""
    for fname, ndigits in IEEE_FILES:
        path = os.path.join(ieee_dir, fname)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                if len(row) < 3 or row[0] == "Registry":
                    continue
                prefix = row[1].strip().lower()
                if len(prefix) != ndigits or not all(c in "0123456789abcdef" for c in prefix):
                    continue
                yield prefix, " ".join(row[2].split())


def read_table(path: str) -> Iterable[tuple[str, str]]:
    """(hex prefix, organisation) from the packaged gzip'd "prefix<TAB>name" table."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or "\t" not in line:
                continue
            prefix, name = line.rstrip("\n").split("\t", 1)
            yield prefix, name


def write_table(entries: Iterable[tuple[str, str]], out: io.BufferedIOBase, header: str) -> int:
    """Write the packaged table (sorted, deterministic gzip: no timestamp). Returns the number of rows."""
    rows = sorted(set(entries))
    text = "".join(f"# {line}\n" for line in header.splitlines()) + "".join(f"{p}\t{n}\n" for p, n in rows)
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return len(rows)


_default: OuiTable | None = None


def default_table() -> OuiTable:
    """The process-wide table, loaded on first use (about 0.2 s)."""
    global _default
    if _default is None:
        _default = OuiTable.load()
    return _default
