"""SNMP notifications in: v1 Trap-PDUs, v2c SNMPv2-Traps and v2c InformRequests, decoded with our own
BER codec (probe/sources/snmp/ber.py), and the UDP listener that receives them.

    note = decode_notification(datagram)        # Notification, or TrapDropped(reason, detail)
    reply = inform_response(note)               # the Response an InformRequest is acknowledged with

A v1 trap is translated as RFC 3584 3.1 says: generic traps 0-5 become snmpTraps.(generic+1) (coldStart,
warmStart, linkDown, linkUp, authenticationFailure, egpNeighborLoss), enterprise-specific ones
enterprise.0.specific; its time-stamp is the sysUpTime. A v2c notification carries sysUpTime.0 and
snmpTrapOID.0 as its first two varbinds (RFC 3416 4.2.6); both are taken wherever they are (some
agents put them elsewhere), snmpTrapOID.0 must be there.

The listener (`TrapListener`) is what stands between the network and the rest of the probe:
  - a per-source token bucket (`RateLimiter`: `rate` datagrams/s, bursts of `burst`, at most
    `max_sources` sources tracked, the least recently heard forgotten first), checked before decoding;
  - the community checked against the configured v1/v2c credentials (an unknown one is counted and
    dropped, as snmptrapd does: no acknowledgement, nothing decoded further);
  - a bounded queue to the consumer; an inform is acknowledged only once it is queued (a full queue
    drops it unacknowledged, so the sender retries later);
  - a retransmitted inform (same source and request-id within `INFORM_DEDUP_SECONDS`) is acknowledged
    again but not queued twice.
Everything dropped is counted by reason (DROP_REASONS) and the latest drops are kept, with what was
wrong and where, for `describe()`. SNMPv3 messages are counted as dropped ("snmpv3_unsupported")
until the USM module lands: the receiver needs its user table and keys to check them.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from probe.sources.snmp.ber import (
    INFORM, RESPONSE, TRAP_V1, TRAP_V2, V1, V2C, V3, BerError, _header, _int, _tlv, decode_oid, decode_pdu_body,
    decode_varbinds, encode_int,
)
from probe.sources.snmp.client import IPADDR, OBJECT_ID, TIMETICKS, Oid, Varbind

_log = logging.getLogger(__name__)

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ENTERPRISE_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 3, 0)
SNMP_TRAP_ADDRESS_0 = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)  # SNMP-COMMUNITY-MIB: the original agent, set by proxies
SNMP_TRAPS = (1, 3, 6, 1, 6, 3, 1, 1, 5)

# Why a datagram was dropped: the `reason` label of the dropped counter (a fixed set: bounded).
DROP_REASONS = ("malformed", "not_a_notification", "unsupported_version", "snmpv3_unsupported",
                "unknown_community", "rate_limited", "queue_full")

INFORM_DEDUP_SECONDS = 30.0
INFORM_DEDUP_MAX = 4096
LAST_DROPS = 20  # drops kept, with their detail, for describe() / diag


@dataclass(frozen=True)
class TrapDropped:
    """A datagram that is not a notification we accept: `reason` one of DROP_REASONS, `detail` says what
    was wrong and where (byte offsets for malformed BER)."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Notification:
    version: int                 # V1 or V2C
    community: bytes
    pdu_type: int                # TRAP_V1, TRAP_V2 or INFORM
    trap_oid: Oid                # snmpTrapOID (v1 translated, RFC 3584)
    uptime_ticks: int | None     # sysUpTime.0 (v1: time-stamp) of the agent when it sent it
    varbinds: tuple[Varbind, ...]  # the payload: without sysUpTime.0 and snmpTrapOID.0
    request_id: int | None = None  # v2c; None for v1
    agent_addr: str | None = None  # v1 agent-addr, or the snmpTrapAddress.0 varbind (proxies)
    enterprise: Oid | None = None  # v1 enterprise, or snmpTrapEnterprise.0
    generic_trap: int | None = None
    specific_trap: int | None = None
    raw_varbinds: bytes = field(default=b"", repr=False)  # the varbind list TLV as sent (informs echo it)

    @property
    def is_inform(self) -> bool:
        return self.pdu_type == INFORM

    @property
    def version_label(self) -> str:
        return "1" if self.version == V1 else "2c"

    def value(self, oid: Oid):
        """The value of the varbind named `oid` (or one under it: a column with its index), else None."""
        for vb in self.varbinds:
            if vb.oid[:len(oid)] == oid:
                return vb.value
        return None


def v1_trap_oid(enterprise: Oid, generic: int, specific: int) -> Oid:
    """RFC 3584 3.1 (2): the snmpTrapOID a v1 trap stands for."""
    if 0 <= generic <= 5:
        return SNMP_TRAPS + (generic + 1,)
    return enterprise + (0, specific)


def decode_notification(data: bytes) -> Notification | TrapDropped:
    """A v1/v2c notification, or why the datagram is not one. Never raises on hostile input."""
    try:
        return _decode(data)
    except BerError as exc:
        return TrapDropped("malformed", str(exc))
    except (ValueError, OverflowError) as exc:  # a value out of range somewhere in an odd encoding
        return TrapDropped("malformed", f"undecodable value: {exc}")


def _decode(data: bytes) -> Notification | TrapDropped:
    end = len(data)
    if end == 0:
        return TrapDropped("malformed", "empty datagram")
    if data[0] != 0x30:  # before the length: whatever this is, it is not SNMP
        return TrapDropped("malformed", f"not an SNMP message (tag 0x{data[0]:02x} at byte 0)")
    _, s, e = _header(data, 0, end)
    if e != end:
        return TrapDropped("malformed", f"{end - e} bytes after the message (it ends at byte {e})")
    version, s = _int(data, s, e)
    if version == V3:
        return TrapDropped("snmpv3_unsupported", "SNMPv3 message: the receiver does not check USM yet")
    if version not in (V1, V2C):
        return TrapDropped("unsupported_version", f"SNMP version field {version} (expected 0 for v1, 1 for v2c)")
    tag, cs, ce = _header(data, s, e)
    if tag != 0x04:
        return TrapDropped("malformed", f"community at byte {s} is not an OCTET STRING (tag 0x{tag:02x})")
    community = data[cs:ce]
    pdu_at = ce
    pdu_type, ps, pe = _header(data, pdu_at, e)
    if pe != e:
        return TrapDropped("malformed", f"{e - pe} bytes after the PDU (byte {pe})")
    if version == V1:
        if pdu_type != TRAP_V1:
            return TrapDropped("not_a_notification", f"v1 PDU type 0x{pdu_type:02x} at byte {pdu_at} "
                                                     "(expected Trap-PDU 0xa4)")
        return _v1(data, community, ps, pe)
    if pdu_type not in (TRAP_V2, INFORM):
        what = "a v1 Trap-PDU in a v2c message" if pdu_type == TRAP_V1 else f"PDU type 0x{pdu_type:02x}"
        return TrapDropped("not_a_notification", f"{what} at byte {pdu_at} (expected SNMPv2-Trap 0xa7 or "
                                                 "InformRequest 0xa6)")
    return _v2(data, community, pdu_type, ps, pe)


def _v1(data: bytes, community: bytes, ps: int, pe: int) -> Notification:
    tag, s, e = _header(data, ps, pe)
    if tag != 0x06:
        raise BerError(f"Trap-PDU enterprise at byte {ps} is not an OBJECT IDENTIFIER (tag 0x{tag:02x})")
    enterprise = decode_oid(data[s:e])
    at = e
    tag, s, e = _header(data, at, pe)
    if tag != 0x40 or e - s != 4:
        raise BerError(f"Trap-PDU agent-addr at byte {at} is not a 4-byte IpAddress (tag 0x{tag:02x}, {e - s} bytes)")
    agent = "%d.%d.%d.%d" % tuple(data[s:e])
    generic, at = _int(data, e, pe)
    specific, at = _int(data, at, pe)
    tag, s, e = _header(data, at, pe)
    if tag != 0x43:
        raise BerError(f"Trap-PDU time-stamp at byte {at} is not TimeTicks (tag 0x{tag:02x})")
    ticks = int.from_bytes(data[s:e], "big")
    at = e
    tag, vs, ve = _header(data, at, pe)
    if tag != 0x30:
        raise BerError(f"Trap-PDU variable-bindings at byte {at} is not a SEQUENCE")
    if ve != pe:
        raise BerError(f"{pe - ve} bytes after the variable-bindings (byte {ve})")
    if not 0 <= generic <= 6:
        raise BerError(f"Trap-PDU generic-trap {generic} (expected 0-6)")
    varbinds = decode_varbinds(data, vs, ve)
    return Notification(V1, community, TRAP_V1, v1_trap_oid(enterprise, generic, specific), ticks, tuple(varbinds),
                        agent_addr=agent, enterprise=enterprise, generic_trap=generic, specific_trap=specific,
                        raw_varbinds=data[at:ve])


def _v2(data: bytes, community: bytes, pdu_type: int, ps: int, pe: int) -> Notification | TrapDropped:
    request_id, _status, _index, at, vs, ve = decode_pdu_body(data, ps, pe)
    varbinds = decode_varbinds(data, vs, ve)
    ticks = trap_oid = enterprise = agent = None
    payload = []
    for vb in varbinds:
        if vb.oid == SYS_UPTIME_0 and ticks is None and vb.type == TIMETICKS:
            ticks = vb.value
        elif vb.oid == SNMP_TRAP_OID_0 and trap_oid is None and vb.type == OBJECT_ID:
            trap_oid = vb.value
        else:
            if vb.oid == SNMP_TRAP_ENTERPRISE_0 and vb.type == OBJECT_ID:
                enterprise = vb.value
            elif vb.oid == SNMP_TRAP_ADDRESS_0 and vb.type == IPADDR:
                agent = vb.value
            payload.append(vb)
    if trap_oid is None:
        return TrapDropped("malformed", "notification without snmpTrapOID.0 (1.3.6.1.6.3.1.1.4.1.0) "
                                        f"among its {len(varbinds)} varbinds")
    return Notification(V2C, community, pdu_type, trap_oid, ticks, tuple(payload), request_id=request_id,
                        agent_addr=agent, enterprise=enterprise, raw_varbinds=data[at:ve])


def inform_response(note: Notification) -> bytes:
    """The Response-PDU that acknowledges an InformRequest: same version, community, request-id and
    varbinds (RFC 3416 4.2.7), error-status noError."""
    if not note.is_inform or note.request_id is None:
        raise ValueError("only an InformRequest is acknowledged")
    pdu = _tlv(RESPONSE, encode_int(note.request_id) + encode_int(0) + encode_int(0) + note.raw_varbinds)
    return _tlv(0x30, encode_int(note.version) + _tlv(0x04, note.community) + pdu)


# -- rate limiting -----------------------------------------------------------------------------------

class RateLimiter:
    """A token bucket per source: `rate` tokens a second, at most `burst` saved. At most `max_sources`
    buckets: a new source evicts the least recently heard one (which then starts again with a full
    bucket: the bound costs a forgotten flood a second burst, never memory)."""

    def __init__(self, rate: float, burst: float, max_sources: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError(f"rate limiter: rate {rate} must be > 0, burst {burst} >= 1, max_sources {max_sources} >= 1")
        self.rate, self.burst, self.max_sources = float(rate), float(burst), int(max_sources)
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # source -> [tokens, last refill]
        self.evicted_total = 0

    def allow(self, source: str) -> bool:
        now = self.clock()
        b = self._buckets.get(source)
        if b is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
                self.evicted_total += 1
            b = self._buckets[source] = [self.burst, now]
        else:
            self._buckets.move_to_end(source)
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)


# -- the listener ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """A notification as the consumer gets it: who sent it (the UDP source) and when."""

    source: str
    port: int
    at: float
    note: Notification


class TrapListener(asyncio.DatagramProtocol):
    """Receives notifications on a UDP socket into a bounded queue (see the module docstring)."""

    def __init__(self, communities: Iterable[str | bytes], *, queue_size: int = 1024, rate: float = 50.0,
                 burst: float = 200.0, max_sources: int = 1024, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.set_communities(communities)
        self.queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=queue_size)
        self.limiter = RateLimiter(rate, burst, max_sources, clock=monotonic)
        self.clock, self.monotonic = clock, monotonic
        self.transport: asyncio.DatagramTransport | None = None
        self.datagrams_total = 0
        self.accepted_total = 0
        self.dropped_total: dict[str, int] = {r: 0 for r in DROP_REASONS}
        self.informs_acknowledged_total = 0
        self.informs_duplicate_total = 0
        self.last_drops: deque[dict] = deque(maxlen=LAST_DROPS)
        self._informs: OrderedDict[tuple[str, int, bytes, int], float] = OrderedDict()
        self._warned: dict[str, float] = {}

    def set_communities(self, communities: Iterable[str | bytes]) -> None:
        self.communities = frozenset(c.encode() if isinstance(c, str) else bytes(c) for c in communities)

    # -- asyncio -------------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def error_received(self, exc) -> None:  # ICMP errors after sending an acknowledgement: nothing to do
        _log.debug("SNMP trap listener: %s", exc)

    def datagram_received(self, data: bytes, addr) -> None:
        self.receive(data, addr)

    # -- the work ------------------------------------------------------------------------------------
    def receive(self, data: bytes, addr) -> Notification | TrapDropped:
        """One datagram from `addr` (host, port): decoded, checked, queued, acknowledged if an inform.
        Returns what became of it."""
        self.datagrams_total += 1
        source, port = str(addr[0]), int(addr[1])
        if not self.limiter.allow(source):
            return self._drop(source, TrapDropped("rate_limited", f"more than {self.limiter.rate:g}/s "
                                                                  f"(burst {self.limiter.burst:g}) from {source}"))
        got = decode_notification(bytes(data))
        if isinstance(got, TrapDropped):
            return self._drop(source, got)
        if got.community not in self.communities:
            return self._drop(source, TrapDropped("unknown_community", f"{got.version_label} notification "
                                                  f"with a community no snmp.credentials entry has ({len(got.community)} "
                                                  "bytes)"))
        if got.is_inform:
            key = (source, port, got.community, got.request_id)
            now = self.monotonic()
            while self._informs and (len(self._informs) > INFORM_DEDUP_MAX
                                     or next(iter(self._informs.values())) < now - INFORM_DEDUP_SECONDS):
                self._informs.popitem(last=False)
            if key in self._informs:  # the sender missed our acknowledgement: acknowledge again, count once
                self.informs_duplicate_total += 1
                self._acknowledge(got, addr)
                return got
        try:
            self.queue.put_nowait(Received(source, port, self.clock(), got))
        except asyncio.QueueFull:
            return self._drop(source, TrapDropped("queue_full", f"queue of {self.queue.maxsize} full; "
                                                  + ("not acknowledged, the sender retries" if got.is_inform else
                                                     "trap lost")))
        self.accepted_total += 1
        if got.is_inform:
            self._informs[key] = now
            self._acknowledge(got, addr)
        return got

    def _acknowledge(self, note: Notification, addr) -> None:
        if self.transport is None:
            return
        self.transport.sendto(inform_response(note), addr)
        self.informs_acknowledged_total += 1

    def _drop(self, source: str, why: TrapDropped) -> TrapDropped:
        self.dropped_total[why.reason] += 1
        self.last_drops.append({"at": self.clock(), "source": source, "reason": why.reason, "detail": why.detail})
        now = self.monotonic()
        if now - self._warned.get(why.reason, -1e9) >= 60.0:  # a flood logs once a minute per reason
            self._warned[why.reason] = now
            _log.warning("SNMP trap from %s dropped (%s): %s", source, why.reason, why.detail)
        else:
            _log.debug("SNMP trap from %s dropped (%s): %s", source, why.reason, why.detail)
        return why


async def listen(listener: TrapListener, host: str, port: int) -> asyncio.DatagramTransport:
    """Bind `listener` to host:port (UDP); "" or "::" listens on every address."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: listener, local_addr=(host or "0.0.0.0", port))
    return transport
