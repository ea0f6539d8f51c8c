"""SNMP notifications in: v1 Trap-PDUs, v2c SNMPv2-Traps and InformRequests, and SNMPv3 (USM)
SNMPv2-Traps and InformRequests, decoded with our own BER codec (probe/sources/snmp/ber.py, usm.py), and
the UDP listener that receives them.

    note = decode_notification(datagram, v3)    # Notification, or TrapDropped(reason, detail, reply)
    reply = inform_response(note, v3)           # the Response an InformRequest is acknowledged with

A v1 trap is translated as RFC 3584 3.1 says: generic traps 0-5 become snmpTraps.(generic+1) (coldStart,
warmStart, linkDown, linkUp, authenticationFailure, egpNeighborLoss), enterprise-specific ones
enterprise.0.specific; its time-stamp is the sysUpTime. A v2c notification carries sysUpTime.0 and
snmpTrapOID.0 as its first two varbinds (RFC 3416 4.2.6); both are taken wherever they are (some
agents put them elsewhere), snmpTrapOID.0 must be there. A v3 notification's ScopedPDU goes the same
v2c way; the Notification then has version V3, the user and security level, and no community.

SNMPv3 (`UsmReceiver`, RFC 3414 3.2): the user is looked up by msgUserName among the v3 credentials
(one name may have several; the message's security level must be the credential's: a noAuthNoPriv
message only for a user without auth). A trap is sent by its authoritative engine: any engine ID is
taken, the keys localized to it, the digest checked, the sender's boots and time learnt from its first
message and kept per engine (`MAX_ENGINES`, least recently heard forgotten), a later message older than
150 s, or of fewer boots, is a replay (notInTimeWindows, RFC 3414 3.2.7 b). For an inform the receiver is
authoritative: its engine ID (given, or `new_engine_id()`), boots and time (seconds since start) must
be in the message; a reportable message refused is answered with a usmStats Report (the counter and
its count): unknownEngineIDs to a discovery (noAuthNoPriv, carrying our engine ID, boots and time),
unknownUserNames, unsupportedSecLevels, wrongDigests, decryptionErrors, and a signed (authNoPriv)
notInTimeWindows carrying our boots and time. A valid inform is acknowledged with a Response at its
security level, same msgID, request-id and varbinds.

The listener (`TrapListener`) is what stands between the network and the rest of the probe:
  - a per-source token bucket (`RateLimiter`: `rate` datagrams/s, bursts of `burst`, at most
    `max_sources` sources tracked, the least recently heard forgotten first), checked before decoding;
  - the community checked against the configured v1/v2c credentials (an unknown one is counted and
    dropped, as snmptrapd does: no acknowledgement, nothing decoded further), a v3 message against the
    v3 users as above;
  - a bounded queue to the consumer; an inform is acknowledged only once it is queued (a full queue
    drops it unacknowledged, so the sender retries later);
  - a retransmitted inform (same source, community or user, and request-id within
    `INFORM_DEDUP_SECONDS`) is acknowledged again but not queued twice.
Everything dropped is counted by reason (DROP_REASONS; a v3 discovery, answered but carrying nothing,
as "engine_discovery") and the latest drops are kept, with what was wrong and where, for `describe()`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from probe.sources.snmp import usm
from probe.sources.snmp.ber import (
    INFORM, REPORT, RESPONSE, TRAP_V1, TRAP_V2, USM_REPORTS, V1, V2C, V3, BerError, _header, _int, _tlv, decode_oid,
    decode_pdu_body, decode_varbinds, encode_int, encode_oid,
)
from probe.sources.snmp.client import IPADDR, OBJECT_ID, TIMETICKS, Oid, Varbind

_log = logging.getLogger(__name__)

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ENTERPRISE_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 3, 0)
SNMP_TRAP_ADDRESS_0 = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)  # SNMP-COMMUNITY-MIB: the original agent, set by proxies
SNMP_TRAPS = (1, 3, 6, 1, 6, 3, 1, 1, 5)

# Why a datagram was dropped: the `reason` label of the dropped counter (a fixed set: bounded).
DROP_REASONS = ("malformed", "not_a_notification", "unsupported_version", "unknown_community", "rate_limited",
                "queue_full", "engine_discovery", "unknown_engine_id", "unknown_user", "unsupported_security_level",
                "wrong_digest", "not_in_time_window", "decryption_error")

INFORM_DEDUP_SECONDS = 30.0
INFORM_DEDUP_MAX = 4096
LAST_DROPS = 20  # drops kept, with their detail, for describe() / diag


@dataclass(frozen=True)
class TrapDropped:
    """A datagram that is not a notification we accept: `reason` one of DROP_REASONS, `detail` says what
    was wrong and where (byte offsets for malformed BER)."""

    reason: str
    detail: str
    reply: bytes = field(default=b"", repr=False)  # v3: the Report to send back (the message was reportable)


@dataclass(frozen=True)
class V3Origin:
    """What a v3 notification came with that its acknowledgement needs (RFC 3412 7.1: the Response
    carries the same msgID, user, security level and context)."""

    msg_id: int
    engine_id: bytes             # msgAuthoritativeEngineID: the sender's (trap) or ours (inform)
    context_engine_id: bytes
    context_name: bytes
    user: usm.User = field(repr=False)  # the credential whose keys checked it


@dataclass(frozen=True)
class Notification:
    version: int                 # V1, V2C or V3
    community: bytes             # empty for v3
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
    user: bytes = b""            # v3: the USM user (msgUserName)
    security_level: str = ""     # v3: noAuthNoPriv, authNoPriv or authPriv
    v3: V3Origin | None = field(default=None, repr=False)

    @property
    def is_inform(self) -> bool:
        return self.pdu_type == INFORM

    @property
    def version_label(self) -> str:
        return {V1: "1", V2C: "2c"}.get(self.version, "3")

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


def decode_notification(data: bytes, v3: "UsmReceiver | None" = None) -> Notification | TrapDropped:
    """A v1/v2c notification, a v3 one checked by `v3` (its users, keys and engine), or why the datagram
    is not one. Never raises on hostile input."""
    try:
        return _decode(data, v3)
    except BerError as exc:
        return TrapDropped("malformed", str(exc))
    except (ValueError, OverflowError) as exc:  # a value out of range somewhere in an odd encoding
        return TrapDropped("malformed", f"undecodable value: {exc}")


def _decode(data: bytes, v3: "UsmReceiver | None") -> Notification | TrapDropped:
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
        if v3 is None:
            msg = _parse_v3(data)
            return TrapDropped("unknown_user", f"SNMPv3 message from user {_show_name(msg.user_name)}: this decoder "
                                               "was given no v3 users")
        return v3.decode(data)
    if version not in (V1, V2C):
        return TrapDropped("unsupported_version", f"SNMP version field {version} (expected 0 for v1, 1 for v2c, "
                                                  "3 for v3)")
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


def _v2(data: bytes, community: bytes, pdu_type: int, ps: int, pe: int, version: int = V2C,
        **security) -> Notification | TrapDropped:
    """A v2-shaped notification PDU (v2c, or the ScopedPDU of a v3 message: `security` its v3 fields)."""
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
    return Notification(version, community, pdu_type, trap_oid, ticks, tuple(payload), request_id=request_id,
                        agent_addr=agent, enterprise=enterprise, raw_varbinds=data[at:ve], **security)


def _response_pdu(note: Notification) -> bytes:
    if not note.is_inform or note.request_id is None:
        raise ValueError("only an InformRequest is acknowledged")
    return _tlv(RESPONSE, encode_int(note.request_id) + encode_int(0) + encode_int(0) + note.raw_varbinds)


def inform_response(note: Notification, v3: "UsmReceiver | None" = None) -> bytes:
    """The Response-PDU that acknowledges an InformRequest: same version, community, request-id and
    varbinds (RFC 3416 4.2.7), error-status noError; a v3 one from `v3`, the receiver that accepted it."""
    if note.version == V3:
        if v3 is None:
            raise ValueError("a v3 inform is acknowledged by the UsmReceiver that accepted it")
        return v3.response(note)
    return _tlv(0x30, encode_int(note.version) + _tlv(0x04, note.community) + _response_pdu(note))


# -- SNMPv3 (USM) ------------------------------------------------------------------------------------

# RFC 3411 SnmpEngineID, format 5 (administratively assigned octets) after 0x80000000 | enterprise: the
# probe has no IANA private enterprise number and borrows nobody's (8072 is Net-SNMP's), so 0.
ENGINE_ID_PREFIX = bytes((0x80, 0x00, 0x00, 0x00, 0x05))
MAX_ENGINES = 4096  # sender engines whose clock is tracked (RFC 3414 3.2.7 b); least recently heard forgotten
REPORT_OIDS = {name: oid for oid, name in USM_REPORTS.items()}
# usmStats counter -> the drop reason it is counted under
_REASON = {"unsupportedSecLevels": "unsupported_security_level", "notInTimeWindows": "not_in_time_window",
           "unknownUserNames": "unknown_user", "unknownEngineIDs": "unknown_engine_id",
           "wrongDigests": "wrong_digest", "decryptionErrors": "decryption_error"}


def new_engine_id() -> bytes:
    """A fresh engine ID for the receiver: ENGINE_ID_PREFIX and 8 random octets."""
    return ENGINE_ID_PREFIX + os.urandom(8)


def check_engine_id(engine_id: bytes) -> None:
    """ValueError unless `engine_id` is an RFC 3411 SnmpEngineID: 5 to 32 octets."""
    if not 5 <= len(engine_id) <= usm.MAX_ENGINE_ID:
        raise ValueError(f"SNMPv3 engine ID of {len(engine_id)} octets (RFC 3411: 5 to {usm.MAX_ENGINE_ID})")


def _show_name(name: bytes) -> str:
    return repr(name.decode("utf-8", "replace"))


def _parse_v3(data: bytes) -> usm.Message:
    try:
        return usm.parse_message(data)
    except BerError as exc:
        raise BerError(f"SNMPv3 message: {exc}") from None


class UsmReceiver:
    """The v3 side of the receiver (RFC 3414 3.2): users by name, the probe's own engine (ID, boots,
    time) for the informs it is authoritative for, and the clocks of the engines that send it traps.

    A message for our engine ID (an inform) is checked against our boots and time, within 150 s; a
    message for another engine that is not reportable (a trap: the sender is authoritative) has its
    keys localized to that engine, and its boots and time are learnt from the first message and held
    against replays after (RFC 3414 3.2.7 b). A reportable message refused is answered with the
    usmStats Report the RFC names (`TrapDropped.reply`); every refusal counts in `stats`."""

    def __init__(self, users: Iterable[usm.User] = (), engine_id: bytes | None = None, boots: int = 1, *,
                 monotonic: Callable[[], float] = time.monotonic, max_engines: int = MAX_ENGINES):
        self.engine_id = engine_id or new_engine_id()
        check_engine_id(self.engine_id)
        if not 1 <= boots <= usm.MAX_BOOTS:
            raise ValueError(f"SNMPv3 engine boots {boots} out of range 1..{usm.MAX_BOOTS}")
        self.boots = boots
        self.monotonic = monotonic
        self._started = monotonic()
        self.max_engines = max_engines
        self._engines: OrderedDict[bytes, tuple[int, int, float]] = OrderedDict()  # engine -> boots, time, heard
        self.stats = {name: 0 for name in USM_REPORTS.values()}  # usmStats counters, as reported
        self._salt = int.from_bytes(os.urandom(8), "big")
        self.set_users(users)

    def set_users(self, users: Iterable[usm.User]) -> None:
        by_name: dict[bytes, list[usm.User]] = {}
        for u in users:  # one name may come with several credentials (sites with their own keys)
            by_name.setdefault(u.name, []).append(u)
        self.users = {name: tuple(us) for name, us in by_name.items()}

    @property
    def time(self) -> int:
        """snmpEngineTime: seconds since this receiver started."""
        return min(int(self.monotonic() - self._started), usm.MAX_BOOTS)

    def engines_tracked(self) -> int:
        return len(self._engines)

    # -- in ------------------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Notification | TrapDropped:
        """A v3 notification checked, decrypted and decoded, or why not. BerError on malformed input."""
        msg = _parse_v3(data)
        level = msg.flags & (usm.FLAG_AUTH | usm.FLAG_PRIV)
        if not msg.engine_id:
            return self._refuse(msg, "unknownEngineIDs", "engine ID discovery (empty msgAuthoritativeEngineID)"
                                + (": answered with our engine ID" if msg.reportable else ", not reportable"),
                                reason="engine_discovery")
        ours = msg.engine_id == self.engine_id
        if not ours and msg.reportable:  # traps are never reportable (RFC 3412 6.4): this wants our engine
            return self._refuse(msg, "unknownEngineIDs", f"reportable message for engine {msg.engine_id.hex()}, "
                                                         f"not ours ({self.engine_id.hex()}): the sender must "
                                                         "discover ours")
        name = _show_name(msg.user_name)
        users = self.users.get(msg.user_name)
        if not users:
            return self._refuse(msg, "unknownUserNames", f"user {name} is in no snmp.credentials entry of version 3")
        candidates = [u for u in users if u.flags == level]
        if not candidates:
            return self._refuse(msg, "unsupportedSecLevels", f"user {name} sent {usm.LEVELS[level]}, configured "
                                + " or ".join(sorted({usm.LEVELS[u.flags] for u in users})))
        user, keys = candidates[0], None
        if level & usm.FLAG_AUTH:
            for user in candidates:
                keys = usm.localize(user, msg.engine_id)
                try:
                    usm.check_digest(msg, data, keys)
                    break
                except usm.UsmError as exc:
                    wrong = exc
            else:
                return self._refuse(msg, "wrongDigests", f"{wrong} (engine {msg.engine_id.hex()})")
            late = self._authoritative_late(msg) if ours else self._sender_late(msg)
            if late:
                return self._refuse(msg, "notInTimeWindows", late, signed_by=user)
        try:
            scoped = usm.plaintext(msg, keys)
        except usm.UsmError as exc:
            return self._refuse(msg, exc.report, f"user {name}: {exc}")
        try:
            return self._scoped(scoped, msg, ours, user, level)
        except BerError as exc:
            raise BerError(f"SNMPv3 ScopedPDU{' (decrypted)' if msg.encrypted else ''}: {exc}") from None

    def _authoritative_late(self, msg: usm.Message) -> str:
        """RFC 3414 3.2.7 a: why a message for our engine is outside its time window, or ""."""
        now = self.time
        if self.boots == usm.MAX_BOOTS or msg.boots != self.boots or abs(msg.time - now) > usm.TIME_WINDOW:
            return (f"engine boots {msg.boots}, time {msg.time}: ours are {self.boots}, {now} "
                    f"(window {usm.TIME_WINDOW} s)")
        return ""

    def _sender_late(self, msg: usm.Message) -> str:
        """RFC 3414 3.2.7 b: why a message from an engine we are not is a replay, or "" (and the engine's
        clock learnt or advanced)."""
        now = self.monotonic()
        known = self._engines.get(msg.engine_id)
        if known is not None:
            boots, etime, heard = known
            latest = etime + int(now - heard)
            if usm.is_replay(boots, latest, msg.boots, msg.time):
                return (f"engine {msg.engine_id.hex()} boots {msg.boots}, time {msg.time}: it was at boots {boots}, "
                        f"time {latest} (older than {usm.TIME_WINDOW} s: a replay?)")
            self._engines.move_to_end(msg.engine_id)
            if msg.boots == boots and msg.time <= latest:
                return ""
        elif len(self._engines) >= self.max_engines:
            self._engines.popitem(last=False)
        self._engines[msg.engine_id] = (msg.boots, msg.time, now)
        return ""

    def _scoped(self, scoped: bytes, msg: usm.Message, ours: bool, user: usm.User,
                level: int) -> Notification | TrapDropped:
        ctx_engine, ctx_name, pdu_type, ps, pe = usm.open_scoped(scoped)
        if pdu_type not in (TRAP_V2, INFORM):
            return TrapDropped("not_a_notification", f"v3 PDU type 0x{pdu_type:02x} in the ScopedPDU "
                                                     "(expected SNMPv2-Trap 0xa7 or InformRequest 0xa6)")
        if pdu_type == INFORM and not ours:
            return TrapDropped("unknown_engine_id", f"InformRequest for engine {msg.engine_id.hex()}, not ours "
                                                    f"({self.engine_id.hex()}), and not reportable")
        origin = V3Origin(msg.msg_id, msg.engine_id, ctx_engine, ctx_name, user)
        return _v2(scoped, b"", pdu_type, ps, pe, version=V3, user=msg.user_name, security_level=usm.LEVELS[level],
                   v3=origin)

    # -- out -----------------------------------------------------------------------------------------
    def _refuse(self, msg: usm.Message, report: str, detail: str, *, reason: str | None = None,
                signed_by: usm.User | None = None) -> TrapDropped:
        """Count the usmStats `report`; a reportable message gets the Report (RFC 3412 7.1), signed
        (authNoPriv) by `signed_by` if given (notInTimeWindows: RFC 3414 3.2.7 a), else noAuthNoPriv."""
        self.stats[report] += 1
        reason = reason or _REASON[report]
        if not msg.reportable:
            return TrapDropped(reason, detail)
        keys = None
        if signed_by is not None:
            keys = usm.localize(replace(signed_by, priv=None, priv_password=b""), self.engine_id)
        vb = _tlv(0x30, encode_oid(REPORT_OIDS[report]) + encode_int(self.stats[report] & 0xFFFFFFFF, 0x41))
        pdu = _tlv(REPORT, encode_int(_request_id(msg)) + encode_int(0) + encode_int(0) + _tlv(0x30, vb))
        reply = usm.encode_message(msg.msg_id, keys, self.engine_id, self.boots, self.time, pdu,
                                   user_name=msg.user_name, context_engine_id=self.engine_id, reportable=False)
        return TrapDropped(reason, detail, reply)

    def response(self, note: Notification) -> bytes:
        """The v3 Response acknowledging `note`, an inform this receiver accepted: its msgID, user and
        security level, request-id and varbinds, from our engine."""
        origin = note.v3
        if origin is None:
            raise ValueError("not a v3 notification")
        pdu = _response_pdu(note)
        user = origin.user
        keys = usm.localize(user, self.engine_id) if user.flags else None
        self._salt = (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
        return usm.encode_message(origin.msg_id, keys, self.engine_id, self.boots, self.time, pdu,
                                  user_name=user.name, context_engine_id=origin.context_engine_id,
                                  context_name=origin.context_name, salt=self._salt, reportable=False)


def _request_id(msg: usm.Message) -> int:
    """The request-id of a plaintext message's PDU (a Report echoes it), else 0 (encrypted or unreadable)."""
    if msg.encrypted:
        return 0
    try:
        _, _, _, ps, pe = usm.open_scoped(msg.data)
        return _int(msg.data, ps, pe)[0]
    except BerError:
        return 0


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

    def __init__(self, communities: Iterable[str | bytes], *, users: Iterable[usm.User] = (),
                 engine_id: bytes | None = None, engine_boots: int = 1, queue_size: int = 1024, rate: float = 50.0,
                 burst: float = 200.0, max_sources: int = 1024, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.set_communities(communities)
        self.v3 = UsmReceiver(users, engine_id, engine_boots, monotonic=monotonic)
        self.queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=queue_size)
        self.limiter = RateLimiter(rate, burst, max_sources, clock=monotonic)
        self.clock, self.monotonic = clock, monotonic
        self.transport: asyncio.DatagramTransport | None = None
        self.datagrams_total = 0
        self.accepted_total = 0
        self.dropped_total: dict[str, int] = {r: 0 for r in DROP_REASONS}
        self.informs_acknowledged_total = 0
        self.informs_duplicate_total = 0
        self.reports_sent_total = 0
        self.last_drops: deque[dict] = deque(maxlen=LAST_DROPS)
        self._informs: OrderedDict[tuple[str, int, int, bytes, int], float] = OrderedDict()
        self._warned: dict[str, float] = {}

    def set_communities(self, communities: Iterable[str | bytes]) -> None:
        self.communities = frozenset(c.encode() if isinstance(c, str) else bytes(c) for c in communities)

    def set_users(self, users: Iterable[usm.User]) -> None:
        self.v3.set_users(users)

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
        got = decode_notification(bytes(data), self.v3)
        if isinstance(got, TrapDropped):
            if got.reply and self.transport is not None:  # a v3 Report: the sender learns our engine, or why not
                self.transport.sendto(got.reply, addr)
                self.reports_sent_total += 1
            return self._drop(source, got)
        if got.version != V3 and got.community not in self.communities:
            return self._drop(source, TrapDropped("unknown_community", f"{got.version_label} notification "
                                                  f"with a community no snmp.credentials entry has ({len(got.community)} "
                                                  "bytes)"))
        if got.is_inform:
            key = (source, port, got.version, got.community or got.user, got.request_id)
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
        self.transport.sendto(inform_response(note, self.v3), addr)
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
