"""A fake SNMP agent behind the SnmpClient Protocol, read from an snmprec recording (for unit tests).

snmprec is snmpsim's format: one `OID|tag|value` per line, tags 2 Integer32, 4 OCTET STRING,
5 NULL, 6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 68 Opaque,
70 Counter64; a tag ending in `x` carries its value hex-encoded.

`SnmprecClient` answers GETs and walks from those records the way an agent and the real client
would (walks page through GETBULK-sized chunks and keep the real client's guards: a row cap and a
non-increasing-OID check). Tests change the device between polls (`set`, `delete`, `apply`) and can
make it misbehave, so modules' robustness is tested without a network:

- `lie_non_increasing=ROOT`: under ROOT, getnext answers the asked OID again (a stuck agent);
- `lie_endless=ROOT`: under ROOT, the agent invents ever-increasing rows without end;
- `lie_types={ROOT: type}`: every value under ROOT comes back as that type (b"garbage" / 0 / ...);
- `timeout_under={ROOT,...}`: any request touching ROOT raises SnmpTimeout;
- `stats`: PDUs sent, per kind, so tests see GETs by index replacing walks.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from probe.sources.snmp.client import (
    COUNTER32, COUNTER64, END_OF_MIB_VIEW, GAUGE32, INTEGER, IPADDR, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL,
    OBJECT_ID, OCTETS, OPAQUE, TIMETICKS, Oid, SnmpProtocolError, SnmpTimeout, Varbind, format_oid, parse_oid,
)

TAGS = {2: INTEGER, 4: OCTETS, 5: NULL, 6: OBJECT_ID, 64: IPADDR, 65: COUNTER32, 66: GAUGE32, 67: TIMETICKS,
        68: OPAQUE, 70: COUNTER64}
TYPE_TAGS = {v: k for k, v in TAGS.items()}
_INTS = {INTEGER: (-(1 << 31), (1 << 31) - 1), COUNTER32: (0, (1 << 32) - 1), GAUGE32: (0, (1 << 32) - 1),
         TIMETICKS: (0, (1 << 32) - 1), COUNTER64: (0, (1 << 64) - 1)}


class SnmprecError(ValueError):
    """A recording line that cannot be read; the message names the file and line."""


def parse_value(tag: str, text: str, where: str = "") -> tuple[str, object]:
    """(type name, value) of one snmprec value, as client.Varbind holds them."""
    hexed = tag.endswith("x")
    try:
        num = int(tag[:-1] if hexed else tag)
    except ValueError:
        raise SnmprecError(f"{where}: bad tag {tag!r}") from None
    if num not in TAGS:
        raise SnmprecError(f"{where}: unknown tag {num} (expected one of {sorted(TAGS)})")
    typ = TAGS[num]
    try:
        raw = bytes.fromhex(text) if hexed else None
    except ValueError:
        raise SnmprecError(f"{where}: tag {tag} needs hex, got {text[:40]!r}") from None
    try:
        if typ in _INTS:
            value = int.from_bytes(raw, "big") if raw is not None else int(text)
            lo, hi = _INTS[typ]
            if not lo <= value <= hi:
                raise SnmprecError(f"{where}: {typ} value {value} out of range")
            return typ, value
        if typ in (OCTETS, OPAQUE):
            return typ, raw if raw is not None else text.encode("utf-8", "surrogateescape")
        if typ == NULL:
            return typ, None
        if typ == OBJECT_ID:
            return typ, parse_oid(raw.decode() if raw is not None else text)
        if typ == IPADDR:
            if raw is not None:
                if len(raw) != 4:
                    raise SnmprecError(f"{where}: IpAddress needs 4 bytes, got {len(raw)}")
                return typ, ".".join(str(b) for b in raw)
            parts = text.split(".")
            if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
                raise SnmprecError(f"{where}: bad IpAddress {text!r}")
            return typ, text
    except ValueError as exc:
        if isinstance(exc, SnmprecError):
            raise
        raise SnmprecError(f"{where}: bad {typ} value {text[:40]!r}") from None
    raise SnmprecError(f"{where}: unhandled type {typ}")


def read_snmprec(text: str, source: str = "<snmprec>") -> dict[Oid, Varbind]:
    records: dict[Oid, Varbind] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("|", 2)
        where = f"{source}:{lineno}"
        if len(parts) != 3:
            raise SnmprecError(f"{where}: expected OID|tag|value, got {line[:60]!r}")
        try:
            oid = parse_oid(parts[0])
        except ValueError:
            raise SnmprecError(f"{where}: bad OID {parts[0][:60]!r}") from None
        if not oid:
            raise SnmprecError(f"{where}: empty OID")
        typ, value = parse_value(parts[1], parts[2], where)
        records[oid] = Varbind(oid, typ, value)
    return records


def _under(oid: Oid, root: Oid) -> bool:
    return oid[:len(root)] == root


_GARBAGE = {OCTETS: b"\xff\xfegarbage", INTEGER: -1, COUNTER32: 0, COUNTER64: 0, GAUGE32: 0, TIMETICKS: 0,
            OBJECT_ID: (0, 0), IPADDR: "0.0.0.0", NULL: None, OPAQUE: b"\x00"}


@dataclass
class ClientStats:
    pdus: int = 0
    gets: int = 0
    get_varbinds: int = 0
    walks: int = 0
    walk_pdus: int = 0
    timeouts: int = 0
    retries: int = 0
    walked: list = field(default_factory=list)  # roots walked, in order (bounded by the test's polls)


class SnmprecClient:
    """SnmpClient Protocol over an in-memory recording. Not thread-safe; one per device in a test."""

    def __init__(self, records: dict[Oid, Varbind] | Iterable[Varbind], *, max_repetitions: int = 25,
                 lie_non_increasing: Oid | str | None = None, lie_endless: Oid | str | None = None,
                 lie_types: dict | None = None, timeout_under: Iterable = ()):
        recs = records if isinstance(records, dict) else {vb.oid: vb for vb in records}
        self._records: dict[Oid, Varbind] = dict(recs)
        self._keys: list[Oid] = sorted(self._records)
        self.max_repetitions = max_repetitions
        self.lie_non_increasing = self._oid(lie_non_increasing)
        self.lie_endless = self._oid(lie_endless)
        self.lie_types = {self._oid(k): v for k, v in (lie_types or {}).items()}
        self.timeout_under = [self._oid(t) for t in timeout_under]
        self.stats = ClientStats()

    @classmethod
    def from_file(cls, path: str | Path, **kw) -> "SnmprecClient":
        path = Path(path)
        return cls(read_snmprec(path.read_text(encoding="utf-8", errors="surrogateescape"), str(path)), **kw)

    @classmethod
    def from_text(cls, text: str, **kw) -> "SnmprecClient":
        return cls(read_snmprec(text), **kw)

    @staticmethod
    def _oid(o) -> Oid | None:
        if o is None:
            return None
        return parse_oid(o) if isinstance(o, str) else tuple(o)

    # -- changing the device between polls --------------------------------------------------------
    def set(self, oid, value, type: str | None = None) -> None:
        """Set (or add) one value; the type defaults to the recorded one."""
        oid = self._oid(oid)
        old = self._records.get(oid)
        typ = type or (old.type if old else None)
        if typ is None:
            raise KeyError(f"{format_oid(oid)} is not in the recording: give its type")
        if oid not in self._records:
            bisect.insort(self._keys, oid)
        self._records[oid] = Varbind(oid, typ, value)

    def delete(self, oid) -> None:
        oid = self._oid(oid)
        if self._records.pop(oid, None) is not None:
            self._keys.remove(oid)

    def apply(self, snmprec_lines: str) -> None:
        """Overlay records given in snmprec format (changed values, new rows)."""
        for vb in read_snmprec(snmprec_lines, "<apply>").values():
            self.set(vb.oid, vb.value, vb.type)

    def value(self, oid):
        vb = self._records.get(self._oid(oid))
        return None if vb is None else vb.value

    # -- the agent ---------------------------------------------------------------------------------
    def _check_timeout(self, oids: Sequence[Oid]) -> None:
        for o in oids:
            if any(_under(o, t) or _under(t, o) for t in self.timeout_under):
                self.stats.timeouts += 1
                raise SnmpTimeout(f"no answer for {format_oid(o)} (simulated timeout)")

    def _answer(self, vb: Varbind) -> Varbind:
        for root, typ in self.lie_types.items():
            if _under(vb.oid, root):
                return Varbind(vb.oid, typ, _GARBAGE.get(typ, b"garbage"))
        return vb

    def _next(self, oid: Oid) -> Varbind:
        if self.lie_endless is not None and _under(oid, self.lie_endless):
            # Invent a next row just after the asked one, forever.
            nxt = oid + (1,) if len(oid) <= len(self.lie_endless) + 1 else oid[:-1] + (oid[-1] + 1,)
            return Varbind(nxt, INTEGER, 1)
        if self.lie_non_increasing is not None and _under(oid, self.lie_non_increasing) and oid in self._records:
            return self._answer(self._records[oid])  # a stuck agent: answers getnext with the same OID
        i = bisect.bisect_right(self._keys, oid)
        if i >= len(self._keys):
            return Varbind(oid, END_OF_MIB_VIEW, None)
        return self._answer(self._records[self._keys[i]])

    def has_subtree(self, prefix: Oid) -> bool:
        """Does the recording hold anything under this OID? (Test helper; not part of the Protocol.)"""
        i = bisect.bisect_left(self._keys, prefix)
        return i < len(self._keys) and _under(self._keys[i], prefix)

    # -- SnmpClient Protocol -----------------------------------------------------------------------
    async def get(self, oids: Sequence[Oid]) -> list[Varbind]:
        oids = [tuple(o) for o in oids]
        self._check_timeout(oids)
        self.stats.pdus += 1
        self.stats.gets += 1
        self.stats.get_varbinds += len(oids)
        out = []
        for o in oids:
            vb = self._records.get(o)
            if vb is not None:
                out.append(self._answer(vb))
            elif self.has_subtree(o[:-1]):
                out.append(Varbind(o, NO_SUCH_INSTANCE, None))
            else:
                out.append(Varbind(o, NO_SUCH_OBJECT, None))
        return out

    async def walk(self, root: Oid, *, max_rows: int = 10000) -> list[Varbind]:
        root = tuple(root)
        self._check_timeout([root])
        self.stats.walks += 1
        if len(self.stats.walked) < 10000:
            self.stats.walked.append(root)
        rows: list[Varbind] = []
        cur = root
        while True:
            self.stats.pdus += 1
            self.stats.walk_pdus += 1
            for _ in range(self.max_repetitions):
                vb = self._next(cur)
                if vb.type == END_OF_MIB_VIEW or not _under(vb.oid, root):
                    return rows
                if vb.oid <= cur:
                    raise SnmpProtocolError(
                        f"walk {format_oid(root)}: agent returned non-increasing OID {format_oid(vb.oid)} "
                        f"after {format_oid(cur)}")
                if len(rows) >= max_rows:
                    raise SnmpProtocolError(f"walk {format_oid(root)}: more than {max_rows} rows (endless table?)")
                rows.append(vb)
                cur = vb.oid
