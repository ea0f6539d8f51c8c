"""What every SNMP module shares: the poll context, table walking, strict value decoding.

A module (system, interfaces, hostresources, printer, ups, inventory) is an object with a `name`,
`async applies(ctx, sys) -> bool` (should it run on this device, chosen from sysObjectID/sysDescr or
a cheap presence check) and `async poll(ctx) -> dict` (plain data, keys as the `sitevigil snmp` JSON).
Modules read the device only through `PollContext`, which wraps an SnmpClient (real or fake), names
objects from the generated MIB tables, and decodes values strictly: a value of the wrong type or out
of range becomes None plus a located problem ("ifHCInOctets.3: OctetString where a number was
expected"), never an exception that would hide the rest of the device.

What a device's modules remember between polls lives in `DeviceMemory` (one slot per module, each
bounded by its module: label caches, previous counters), so the poller keeps one per device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from probe.sources.snmp import mibtables as T
from probe.sources.snmp.counters import counter_deltas as spec_counter_deltas
from probe.sources.snmp.client import (
    COUNTER32, COUNTER64, END_OF_MIB_VIEW, GAUGE32, INTEGER, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL,
    OBJECT_ID, OCTETS, TIMETICKS, Oid, SnmpClient, SnmpError, Varbind, format_oid,
)

NUMBER_TYPES = (INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64)
ABSENT = (NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW, NULL)
MAX_PROBLEMS = 20          # per module and poll: enough to see what is wrong, bounded
TICKS_WRAP = 1 << 32       # TimeTicks is 32-bit hundredths of a second: wraps after ~497 days
MAX_GET_VARBINDS = 40      # varbinds per GET when reading counters by index


_ROW_BY_OID = {T.OID[row]: row for row in T.COLUMNS}


# prev, cur (uint64 arrays) and bits (uint8: 32 or 64) -> float64 deltas, NaN for a reset
CounterDeltas = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class AgentDataError(SnmpError):
    """The agent answered, but with data a module cannot use at all (e.g. sysUpTime as a string)."""

    kind = "bad_value"


def uptime_went_back(prev_ticks: int, prev_at: float, ticks: int, now: float) -> bool:
    """Did the agent restart between two sysUpTime readings taken `now - prev_at` seconds apart?

    The reading is first unwrapped by the multiple of 2**32 that brings it closest to the expected
    prev + elapsed (TimeTicks wrap after 497 days, which is not a restart). Then it is a restart when
      - uptime went back (by more than a second: several subagents may disagree slightly), or
      - it is well behind the expected value (by more than max(30 s, 10% of elapsed)) AND no older
        than the time since the previous reading: a restart long after the last poll, whose new
        uptime already grew past the old one. An agent whose sysUpTime is frozen or cached is older
        than that, so it is not taken for a restart.
    """
    elapsed = max(0.0, now - prev_at)
    expected = prev_ticks + elapsed * 100.0
    wraps = max(0, round((expected - ticks) / TICKS_WRAP))
    unwrapped = ticks + wraps * TICKS_WRAP
    if unwrapped + 100 < prev_ticks:
        return True
    tolerance = max(30.0, 0.1 * elapsed) * 100.0
    return unwrapped + tolerance < expected and ticks <= elapsed * 100.0 + tolerance


@dataclass
class DeviceMemory:
    """Per-device state kept between polls. Bounded: a few scalars plus one slot per module."""

    slots: dict[str, dict] = field(default_factory=dict)
    uptime_ticks: int | None = None
    uptime_at: float | None = None
    boot_epoch: int = 0          # incremented at each detected restart; modules compare with theirs
    restarts: int = 0
    modules: tuple[str, ...] | None = None   # the automatic module choice, kept until a restart
    modules_at: float = 0.0
    sys_object_id: str | None = None
    # Per module, since the probe started: polls, pdus, retries, timeouts, errors by class,
    # last_success (wall clock). What the `_total` metrics and last-success timestamps expose.
    module_stats: dict[str, dict] = field(default_factory=dict)

    def slot(self, module: str) -> dict:
        return self.slots.setdefault(module, {})


class PollContext:
    """One poll of one device: the client, the clock, the memory, and the problems found."""

    def __init__(self, client: SnmpClient, memory: DeviceMemory | None = None, *, now: float | None = None,
                 max_rows: int = 10000, module: str = "", shared: dict | None = None,
                 counter_deltas: CounterDeltas | None = None):
        self.client = client
        # (prev, cur, bits) -> deltas: the specification, or the fast path's kernel its composer hands in
        self.counter_deltas = counter_deltas if counter_deltas is not None else spec_counter_deltas
        self.memory = memory if memory is not None else DeviceMemory()
        self.now = time.time() if now is None else now
        self.max_rows = max_rows
        self.module = module
        self.problems: list[str] = []
        self.problems_total = 0
        self.shared = shared if shared is not None else {}  # one poll's facts, shared by its modules
        self.cache: dict = {}  # tables read once per poll and shared by a module's sections

    # -- problems ---------------------------------------------------------------------------------
    def problem(self, msg: str) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(msg)

    # -- restarts ---------------------------------------------------------------------------------
    def observe_uptime(self, ticks: int | None) -> bool:
        """Feed a sysUpTime reading; True when the agent restarted since the previous reading."""
        if "restarted" in self.shared:
            return self.shared["restarted"]
        m = self.memory
        if ticks is None:
            return False
        restarted = m.uptime_ticks is not None and m.uptime_at is not None and \
            uptime_went_back(m.uptime_ticks, m.uptime_at, ticks, self.now)
        if restarted:
            m.boot_epoch += 1
            m.restarts += 1
        m.uptime_ticks, m.uptime_at = ticks, self.now
        self.shared["restarted"] = restarted
        return restarted

    # -- reading ----------------------------------------------------------------------------------
    async def get(self, names_or_oids: Sequence[str | Oid]) -> list[Varbind]:
        oids = [T.OID[n] + (0,) if isinstance(n, str) else tuple(n) for n in names_or_oids]
        out: list[Varbind] = []
        for i in range(0, len(oids), MAX_GET_VARBINDS):
            chunk = oids[i:i + MAX_GET_VARBINDS]
            try:
                got = await self.client.get(chunk)
            except SnmpError as exc:
                if exc.kind != "protocol" or len(chunk) == 1:
                    raise
                # An SNMPv1 agent (noSuchName) or a broken one fails the whole request for one
                # OID it lacks: ask one by one, and take a failing OID as absent.
                got = []
                for oid in chunk:
                    try:
                        got.extend(await self.client.get([oid]))
                    except SnmpError as one:
                        if one.kind != "protocol":
                            raise
                        got.append(Varbind(oid, NO_SUCH_OBJECT, None))
            if len(got) != len(chunk):
                raise AgentDataError(f"GET of {len(chunk)} OIDs answered with {len(got)} varbinds")
            for want, vb in zip(chunk, got):
                if vb.oid != want and vb.type not in ABSENT:
                    raise AgentDataError(f"GET {format_oid(want)} answered for {format_oid(vb.oid)}")
            out.extend(got)
        return out

    async def scalars(self, names: Sequence[str]) -> dict[str, Varbind | None]:
        """GET of NAME.0 for each scalar name, one request; missing ones map to None."""
        got = await self.get(list(names))
        return {n: (None if vb.type in ABSENT else vb) for n, vb in zip(names, got)}

    async def walk_column(self, name: str) -> dict[Oid, Varbind]:
        """index (OID suffix) -> varbind for one column."""
        root = T.OID[name]
        out: dict[Oid, Varbind] = {}
        for vb in await self.client.walk(root, max_rows=self.max_rows):
            if vb.oid[:len(root)] != root or len(vb.oid) == len(root):
                raise AgentDataError(f"walk of {name} returned {format_oid(vb.oid)} outside the column")
            if vb.type in ABSENT:
                continue
            out[vb.oid[len(root):]] = vb
        return out

    async def walk_columns(self, names: Iterable[str]) -> dict[Oid, dict[str, Varbind]]:
        """index -> {column name: varbind} (absent columns simply add nothing).

        Columns of one table row are fetched with one walk of the whole row when they are at
        least half of its columns (one GETBULK stream instead of a walk per column: a 3-port
        printer's ifTable is 3 PDUs, not 20), else with one walk per column."""
        names = list(names)
        rows: dict[Oid, dict[str, Varbind]] = {}
        by_row: dict[Oid, list[str]] = {}
        for n in names:
            by_row.setdefault(T.OID[n][:-1], []).append(n)
        for row_oid, cols in by_row.items():
            row = _ROW_BY_OID.get(row_oid)
            all_cols = T.COLUMNS.get(row, ()) if row else ()
            if row and len(cols) * 2 >= len(all_cols):
                got = await self._walk_row(row, cols)
            else:
                got = {}
                for name in cols:
                    for idx, vb in (await self.walk_column(name)).items():
                        got.setdefault(idx, {})[name] = vb
            for idx, found in got.items():
                r = rows.get(idx)
                if r is None:
                    if len(rows) >= self.max_rows:
                        raise AgentDataError(f"table of {cols[0]}: more than {self.max_rows} rows")
                    r = rows[idx] = {}
                r.update(found)
        return rows

    async def _walk_row(self, row: str, cols: list[str]) -> dict[Oid, dict[str, Varbind]]:
        root = T.OID[row]
        wanted = {T.OID[c][-1]: c for c in cols}
        n_cols = max(1, len(T.COLUMNS[row]))
        out: dict[Oid, dict[str, Varbind]] = {}
        for vb in await self.client.walk(root, max_rows=self.max_rows * n_cols):
            if vb.oid[:len(root)] != root or len(vb.oid) < len(root) + 2:
                raise AgentDataError(f"walk of {row} returned {format_oid(vb.oid)} outside the table")
            name = wanted.get(vb.oid[len(root)])
            if name is None or vb.type in ABSENT:
                continue
            idx = vb.oid[len(root) + 1:]
            r = out.get(idx)
            if r is None:
                if len(out) >= self.max_rows:
                    raise AgentDataError(f"{row}: more than {self.max_rows} rows")
                r = out[idx] = {}
            r[name] = vb
        return out

    async def has_subtree(self, name_or_oid: str | Oid) -> bool:
        """Does the agent hold anything under this object? (One small walk, stopped at the first row.)"""
        root = T.OID[name_or_oid] if isinstance(name_or_oid, str) else tuple(name_or_oid)
        try:
            return bool(await self.client.walk(root, max_rows=1))
        except AgentDataError:
            return True
        except SnmpError as exc:
            # More than one row is a yes; a timeout or auth error is not an answer about presence.
            return exc.kind == "protocol"

    # -- decoding (strict types; problems are located and bounded) -------------------------------
    def _where(self, vb: Varbind, name: str | None) -> str:
        if name and name in T.OID:
            root = T.OID[name]
            if vb.oid[:len(root)] == root:
                suffix = format_oid(vb.oid[len(root):])
                return f"{name}.{suffix}" if suffix else name
        return name or format_oid(vb.oid)

    def int(self, vb: Varbind | None, name: str | None = None, *, lo: int | None = None,
            hi: int | None = None) -> int | None:
        if vb is None or vb.type in ABSENT:
            return None
        if vb.type not in NUMBER_TYPES or not isinstance(vb.value, int) or isinstance(vb.value, bool):
            self.problem(f"{self._where(vb, name)}: {vb.type} where a number was expected")
            return None
        v = vb.value
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.problem(f"{self._where(vb, name)}: {v} out of range [{lo}, {hi}]")
            return None
        return v

    def counter(self, vb: Varbind | None, name: str | None = None) -> tuple[int, int] | None:
        """(value, bits) of a counter: 64 for Counter64, else 32 (values must then fit in 32 bits)."""
        v = self.int(vb, name, lo=0)
        if v is None:
            return None
        bits = 64 if vb.type == COUNTER64 else 32
        if bits == 32 and v >= 1 << 32:
            self.problem(f"{self._where(vb, name)}: {v} does not fit the 32-bit {vb.type}")
            return None
        return v, bits

    def text(self, vb: Varbind | None, name: str | None = None, *, max_len: int = 255) -> str | None:
        if vb is None or vb.type in ABSENT:
            return None
        if vb.type != OCTETS or not isinstance(vb.value, (bytes, bytearray)):
            self.problem(f"{self._where(vb, name)}: {vb.type} where a string was expected")
            return None
        s = bytes(vb.value).rstrip(b"\x00").decode("utf-8", "replace")
        s = "".join(ch if ch.isprintable() else " " for ch in s).strip()
        return s[:max_len]

    def mac(self, vb: Varbind | None, name: str | None = None) -> str | None:
        if vb is None or vb.type in ABSENT:
            return None
        if vb.type != OCTETS or not isinstance(vb.value, (bytes, bytearray)):
            self.problem(f"{self._where(vb, name)}: {vb.type} where a MAC address was expected")
            return None
        b = bytes(vb.value)
        if len(b) == 0:
            return None
        if len(b) == 6:
            return format_mac(b)
        parsed = parse_mac_text(b)
        if parsed is None:
            self.problem(f"{self._where(vb, name)}: {len(b)} bytes where a 6-byte MAC address was expected")
        return parsed

    def oid(self, vb: Varbind | None, name: str | None = None) -> Oid | None:
        if vb is None or vb.type in ABSENT:
            return None
        if vb.type != OBJECT_ID or not isinstance(vb.value, tuple):
            self.problem(f"{self._where(vb, name)}: {vb.type} where an OID was expected")
            return None
        return vb.value

    def enum(self, vb: Varbind | None, name: str) -> str | None:
        v = self.int(vb, name)
        if v is None:
            return None
        return T.ENUMS.get(name, {}).get(v, str(v))


def format_mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_mac_text(b: bytes) -> str | None:
    """Some agents send a MAC as text ("00:11:22:33:44:55", "0011.2233.4455", "001122334455")."""
    try:
        s = b.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    hexdigits = "".join(ch for ch in s if ch not in ":-. ")
    if len(hexdigits) != 12 or any(ch not in "0123456789abcdef" for ch in hexdigits):
        return None
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))


def mac_from_index(idx: Oid) -> str | None:
    if len(idx) != 6 or any(not 0 <= x <= 255 for x in idx):
        return None
    return format_mac(bytes(idx))


def ipv4_from_index(idx: Oid) -> str | None:
    if len(idx) != 4 or any(not 0 <= x <= 255 for x in idx):
        return None
    return ".".join(str(x) for x in idx)


def inet_address(addr_type: int, octets: Sequence[int]) -> str | None:
    """INET-ADDRESS-MIB InetAddress (type 1 ipv4, 2 ipv6, 3/4 with zone) as text, or None."""
    import ipaddress

    if any(not 0 <= x <= 255 for x in octets):
        return None
    b = bytes(octets)
    try:
        if addr_type in (1, 3) and len(b) in (4, 8):
            return str(ipaddress.IPv4Address(b[:4]))
        if addr_type in (2, 4) and len(b) in (16, 20):
            return str(ipaddress.IPv6Address(b[:16]))
    except ValueError:
        return None
    return None


@dataclass
class Module:
    """Base for the modules: a name, what it needs to run, and its poll."""

    name: str = ""

    async def applies(self, ctx: PollContext, sys: dict) -> bool:  # pragma: no cover - overridden
        return True

    async def poll(self, ctx: PollContext) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


def enterprise(sys_object_id: Oid | None) -> int | None:
    """The private enterprise number of a sysObjectID under 1.3.6.1.4.1, or None."""
    if sys_object_id and len(sys_object_id) > 6 and sys_object_id[:6] == (1, 3, 6, 1, 4, 1):
        return sys_object_id[6]
    return None

