"""The real SNMP client: sessions that talk to devices over UDP, v1/v2c and v3, with our own codec.

    engine = Engine.for_running_loop()          # one per event loop, shared by every device
    session = await engine.session("192.0.2.7", credential, timeout=2, retries=1, max_repetitions=25)
    rows = await session.walk((1, 3, 6, 1, 2, 1, 2, 2))
    print(session.stats)                        # PDUs sent, retries, timeouts

Layers, so the walk logic can be tested with a fake wire:
- `Session` implements `SnmpClient` (client.py): GET, and walks by GETBULK (v2c/v3) or GETNEXT (v1),
  with adaptive max-repetitions (halved on tooBig or a timeout, doubled back after a run of good
  answers), retries, a guard against non-increasing OIDs and a row cap per walk. It speaks to a
  `Transport`, which sends one PDU and returns one answer or raises `AttemptTimeout`.
- `CommunityTransport`: v1/v2c messages encoded and decoded by ber.py (pysnmp's pyasn1 codec is the
  bottleneck of a walk), sent through one UDP socket per event loop that matches answers to requests
  by request-id (msgID for v3) and source address.
- `UsmTransport`: v3 messages and their security (usm.py) over the same socket: engine ID discovery,
  the agent's clock, keys localized per agent engine (one row per device: a user name shared with
  different keys cannot cross over), USM reports (unknown user, wrong digest, decryption error)
  mapped to `SnmpAuthError`.

A wrong community is a silence on the wire, like a dead device. When a credential has never been
answered and times out, the session sends one SNMPv3 discovery probe (which any v3-capable agent
answers whatever its users): an answer means the agent is alive and the credential was refused, so
the error is `SnmpAuthError`, not `SnmpTimeout`. Agents without v3 cannot be told apart this way;
the credential selection (credentials.py) also reports auth when another credential is answered.

v3 protocols (all tested against Net-SNMP 5.9's snmpd, tests/lab/test_snmp_engine_lab.py):
auth MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512; privacy DES, AES(-128), AES-192 and AES-256 with
the Blumenthal key extension (Net-SNMP's AES-192/AES-256), AES192C/AES256C with the Reeder extension
(Cisco; Net-SNMP's AES-192-C/AES-256-C). 3DES exists in pysnmp but not in Net-SNMP, so it is not
offered. Net-SNMP answers a wrong auth key or user with a report (told as such) but silently drops
a message it cannot decrypt: a wrong privacy key is told by the discovery probe above.
Speed (benchmarks/bench_snmp.py): v2c and v3 walk at about snmpbulkwalk's rate. pysnmp is the
reference the tests hold the v3 path to (tests/snmp_pysnmp_usm.py).
"""
from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import random
import socket
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

from probe.sources.snmp import ber, usm
from probe.sources.snmp.client import (
    END_OF_MIB_VIEW, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, Oid, SnmpAuthError, SnmpError, SnmpProtocolError,
    SnmpTimeout, Varbind, format_oid,
)

if TYPE_CHECKING:
    from probe.config.snmp import SnmpCredential

_log = logging.getLogger(__name__)

GROW_AFTER = 4          # good GETBULK answers in a row before max-repetitions doubles back
MAX_GET_OIDS = 32       # OIDs per GET request; larger lists are split
UDP_RCVBUF = 4 << 20    # many agents answering at once must not overflow the socket


class AttemptTimeout(Exception):
    """One request got no answer within its timeout (internal: the session retries)."""


@dataclass
class RequestStats:
    """Counters of what a session put on the wire; the poller reports deltas per module."""

    pdus: int = 0      # request PDUs sent, retries and probes included
    retries: int = 0   # PDUs sent again after a timeout
    timeouts: int = 0  # PDUs that got no answer in time
    varbinds: int = 0  # varbinds received

    def copy(self) -> "RequestStats":
        return RequestStats(self.pdus, self.retries, self.timeouts, self.varbinds)

    def since(self, before: "RequestStats") -> "RequestStats":
        return RequestStats(self.pdus - before.pdus, self.retries - before.retries,
                            self.timeouts - before.timeouts, self.varbinds - before.varbinds)


@dataclass(frozen=True, slots=True)
class Answer:
    error_status: int
    error_index: int
    varbinds: list[Varbind]


class Transport(Protocol):
    """One request PDU out, one answer back. Retries and walk logic live in `Session`."""

    version: int  # ber.V1, ber.V2C or ber.V3

    async def send(self, pdu_type: int, oids: Sequence[Oid], *, timeout: float, non_repeaters: int = 0,
                   max_repetitions: int = 0) -> Answer:
        """Raises AttemptTimeout on silence, SnmpAuthError/SnmpProtocolError on a refusal or garbage."""

    async def alive(self, timeout: float) -> bool:
        """Does anything SNMP answer at this address regardless of the credential (v3 discovery)?"""


class Session:
    """A `SnmpClient` for one device and one credential, over any `Transport`."""

    def __init__(self, transport: Transport, *, label: str, timeout: float = 2.0, retries: int = 1,
                 max_repetitions: int = 25, credential_name: str = ""):
        self.transport = transport
        self.label = label                  # "host:port", for error messages (never a secret)
        self.credential_name = credential_name
        self.timeout = timeout
        self.retries = retries
        self.max_repetitions = max_repetitions
        self.repetitions = max_repetitions  # the adaptive value, remembered across walks
        self.stats = RequestStats()
        self.answered = False               # has this credential ever been answered here?
        self.alive: bool | None = None      # what the discovery probe said, once asked (or told)
        self._good_in_a_row = 0

    @property
    def version(self) -> int:
        return self.transport.version

    # -- requests with retries ------------------------------------------------------------------
    async def _request(self, pdu_type: int, oids: Sequence[Oid], *, bulk: bool = False) -> Answer:
        """One request with retries; for GETBULK, max-repetitions shrinks on tooBig and on timeouts."""
        attempt = 0
        while True:
            self.stats.pdus += 1
            reps = self.repetitions if bulk else 0
            try:
                answer = await self.transport.send(pdu_type, oids, timeout=self.timeout,
                                                   non_repeaters=0, max_repetitions=reps)
            except AttemptTimeout:
                self.stats.timeouts += 1
                self._good_in_a_row = 0
                if bulk:  # a big answer may be what got lost (fragments, a slow agent): ask for less
                    self.repetitions = max(1, self.repetitions // 2)
                if attempt >= self.retries:
                    await self._timed_out(pdu_type, oids)
                attempt += 1
                self.stats.retries += 1
                continue
            self.answered = True
            if bulk and answer.error_status == ber.TOO_BIG:
                if self.repetitions == 1:
                    raise SnmpProtocolError(f"{self.label}: agent answers tooBig even for one repetition "
                                            f"of {format_oid(oids[0])}")
                self.repetitions = max(1, self.repetitions // 2)
                self._good_in_a_row = 0
                continue  # not a retry: the agent answered, we asked for too much
            self.stats.varbinds += len(answer.varbinds)
            if bulk and self.repetitions < self.max_repetitions:
                self._good_in_a_row += 1
                if self._good_in_a_row >= GROW_AFTER:
                    self.repetitions = min(self.max_repetitions, self.repetitions * 2)
                    self._good_in_a_row = 0
            return answer

    async def _timed_out(self, pdu_type: int, oids: Sequence[Oid]):
        what = f"{_PDU_NAMES.get(pdu_type, 'request')} {format_oid(oids[0])}" if oids else "request"
        tries = self.retries + 1
        if not self.answered:
            alive = self.alive
            if alive is None:
                self.stats.pdus += 1
                try:
                    alive = await self.transport.alive(min(self.timeout, 2.0))
                except Exception:  # a failed probe must not hide the timeout it was meant to explain
                    alive = False
                self.alive = alive
            if alive:
                cred = f"credential {self.credential_name!r}" if self.credential_name else "the credential"
                why = ("wrong v3 privacy key or protocol (the agent drops what it cannot decrypt)"
                       if self.version == ber.V3 else "wrong community") + " or not allowed from this address"
                raise SnmpAuthError(f"{self.label}: agent is alive (answers SNMPv3 discovery) but ignored {what} "
                                    f"with {cred} {tries} times: {why}")
        raise SnmpTimeout(f"{self.label}: no answer to {what} after {tries} tries of {self.timeout:g}s")

    # -- SnmpClient -----------------------------------------------------------------------------
    async def get(self, oids: Sequence[Oid]) -> list[Varbind]:
        oids = [tuple(o) for o in oids]
        out: list[Varbind] = []
        for i in range(0, len(oids), MAX_GET_OIDS):
            out.extend(await self._get_chunk(oids[i:i + MAX_GET_OIDS]))
        return out

    async def _get_chunk(self, oids: list[Oid]) -> list[Varbind]:
        if not oids:
            return []
        missing: dict[int, Varbind] = {}
        ask = list(range(len(oids)))
        while True:
            answer = await self._request(ber.GET, [oids[i] for i in ask])
            status = answer.error_status
            if status == 0:
                if len(answer.varbinds) != len(ask):
                    raise SnmpProtocolError(f"{self.label}: GET of {len(ask)} OIDs answered with "
                                            f"{len(answer.varbinds)} varbinds")
                got = dict(zip(ask, answer.varbinds))
                got.update(missing)
                return [got[i] for i in range(len(oids))]
            if status == ber.TOO_BIG and len(ask) > 1:
                half = len(ask) // 2
                first = await self._get_chunk([oids[i] for i in ask[:half]])
                second = await self._get_chunk([oids[i] for i in ask[half:]])
                got = dict(zip(ask, first + second))
                got.update(missing)
                return [got[i] for i in range(len(oids))]
            if status == ber.NO_SUCH_NAME and 1 <= answer.error_index <= len(ask):
                # SNMPv1 answers a missing OID with an error for the whole request: drop it, ask again.
                i = ask.pop(answer.error_index - 1)
                missing[i] = Varbind(oids[i], NO_SUCH_OBJECT, None)
                if not ask:
                    return [missing[i] for i in range(len(oids))]
                continue
            raise self._status_error(status, f"GET {format_oid(oids[ask[0]])}", answer.error_index)

    async def walk(self, root: Oid, *, max_rows: int = 10000) -> list[Varbind]:
        """Every varbind under `root` in OID order. `max_rows` bounds the varbinds of this walk (a
        table's rows times the columns under `root`): more raises SnmpProtocolError naming the table."""
        root = tuple(root)
        n = len(root)
        out: list[Varbind] = []
        last = root
        bulk = self.version != ber.V1
        pdu_type = ber.GETBULK if bulk else ber.GETNEXT
        while True:
            answer = await self._request(pdu_type, [last], bulk=bulk)
            if answer.error_status:
                if answer.error_status == ber.NO_SUCH_NAME and not bulk:
                    return out  # SNMPv1's end of the MIB
                raise self._status_error(answer.error_status, f"walking {format_oid(root)} at {format_oid(last)}",
                                         answer.error_index)
            if not answer.varbinds:
                return out
            for vb in answer.varbinds:
                oid = vb.oid
                if vb.type == END_OF_MIB_VIEW:
                    return out
                if oid <= last:
                    raise SnmpProtocolError(f"{self.label}: walking {format_oid(root)}: agent returned "
                                            f"non-increasing OID {format_oid(oid)} after {format_oid(last)}")
                if oid[:n] != root:
                    return out
                last = oid
                if vb.type == NO_SUCH_OBJECT or vb.type == NO_SUCH_INSTANCE:
                    continue  # not valid in a GETNEXT/GETBULK answer; skip rather than report a value
                out.append(vb)
                if len(out) > max_rows:
                    raise SnmpProtocolError(f"{self.label}: table {format_oid(root)} has more than {max_rows} "
                                            f"rows; stopped (endless table? raise snmp.max_rows_per_table if not)")

    def _status_error(self, status: int, what: str, index: int) -> SnmpError:
        name = ber.ERROR_STATUS.get(status, str(status))
        if status in ber.ACCESS_DENIED:  # the agent knows us but its access rules (VACM) refuse this
            return SnmpAuthError(f"{self.label}: {what}: agent answered {name}: the credential's security level "
                                 f"or view does not allow this")
        return SnmpProtocolError(f"{self.label}: {what}: agent answered {name} (index {index})")

    async def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close:
            await close()


_PDU_NAMES = {ber.GET: "GET", ber.GETNEXT: "GETNEXT", ber.GETBULK: "GETBULK"}


# ---------------------------------------------------------------------------------------------------
# v1/v2c: our own codec over one UDP socket per event loop


class _Dispatcher(asyncio.DatagramProtocol):
    """One UDP socket shared by every v1/v2c session of a loop; answers matched by request-id."""

    def __init__(self):
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future, tuple]] = {}
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self.stray = 0  # datagrams that matched no pending request (late answers, spoofs)

    def next_id(self) -> int:
        return next(self._ids) & 0x7FFFFFFF or next(self._ids) & 0x7FFFFFFF

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data: bytes, addr):
        rid = _message_id(data)
        entry = self.pending.get(rid) if rid is not None else None
        if entry is None or entry[1] != addr[:2] or entry[0].done():
            self.stray += 1
            return
        entry[0].set_result(data)

    def error_received(self, exc):  # ICMP errors on an unconnected socket: the request will time out
        pass

    async def exchange(self, request_id: int, message: bytes, addr: tuple, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending[request_id] = (fut, addr)
        timer = loop.call_later(timeout, _expire, fut)
        try:
            self.transport.sendto(message, addr)
            return await fut
        finally:
            timer.cancel()
            self.pending.pop(request_id, None)


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(AttemptTimeout())


def _message_id(data: bytes) -> int | None:
    """request-id of a v1/v2c message, msgID of a v3 one."""
    try:
        tag, s, e = ber._header(data, 0, len(data))
        version, s = ber._int(data, s, e)
        tag, hs, he = ber._header(data, s, e)
        if version == ber.V3:
            return ber._int(data, hs, he)[0]
        _, ps, pe = ber._header(data, he, e)
        return ber._int(data, ps, pe)[0]
    except ber.BerError:
        return None


class CommunityTransport:
    def __init__(self, dispatcher: _Dispatcher, addr: tuple, version: int, community: bytes):
        self.dispatcher = dispatcher
        self.addr = addr
        self.version = version
        self._community = community

    async def send(self, pdu_type, oids, *, timeout, non_repeaters=0, max_repetitions=0) -> Answer:
        d = self.dispatcher
        rid = d.next_id()
        msg = ber.encode_request(self.version, self._community, pdu_type, rid, oids,
                                 non_repeaters=non_repeaters, max_repetitions=max_repetitions)
        data = await d.exchange(rid, msg, self.addr, timeout)
        try:
            version, community, ptype, rid2, status, index, vbs = ber.decode_response(data)
        except ber.BerError as exc:
            raise SnmpProtocolError(f"{self.addr[0]}:{self.addr[1]}: malformed answer: {exc}") from None
        if ptype != ber.RESPONSE or rid2 != rid or version != self.version:
            raise SnmpProtocolError(f"{self.addr[0]}:{self.addr[1]}: unexpected answer (PDU 0x{ptype:02x}, "
                                    f"version {version})")
        return Answer(status, index, vbs)

    async def alive(self, timeout: float) -> bool:
        return await _v3_discovery_answered(self.dispatcher, self.addr, timeout)


async def _v3_discovery_answered(dispatcher: _Dispatcher, addr: tuple, timeout: float) -> bool:
    data = await _v3_discovery(dispatcher, addr, timeout)
    return data is not None and ber.v3_engine_id(data) is not None


async def _v3_discovery(dispatcher: _Dispatcher, addr: tuple, timeout: float) -> bytes | None:
    """The agent's answer to an SNMPv3 engine-ID discovery (RFC 3414 4), or None when nothing answers."""
    mid = dispatcher.next_id()
    try:
        return await dispatcher.exchange(mid, ber.encode_v3_discovery(mid, mid), addr, timeout)
    except AttemptTimeout:
        return None


# ---------------------------------------------------------------------------------------------------
# v3: USM (usm.py) on our codec, over the same dispatcher

_REPORT_WHY = {
    "unknownUserNames": "agent does not know the v3 user (usmStatsUnknownUserNames)",
    "wrongDigests": "wrong v3 auth key or protocol (usmStatsWrongDigests)",
    "decryptionErrors": "wrong v3 privacy key or protocol (usmStatsDecryptionErrors)",
    "unsupportedSecLevels": "agent does not allow this v3 security level (usmStatsUnsupportedSecLevels)",
    "notInTimeWindows": "agent keeps answering that our messages are outside its time window "
                        "(usmStatsNotInTimeWindows)",
    "unknownEngineIDs": "agent keeps refusing its own engine ID (usmStatsUnknownEngineIDs)",
}


@dataclass
class _Peer:
    """What we know of an agent's engine (RFC 3414 2.3, the non-authoritative side's cache)."""

    engine_id: bytes
    keys: "usm.Keys | None"
    boots: int
    time: int           # latestReceivedEngineTime
    at: float           # monotonic time when `time` was received

    def now(self, mono: float) -> int:
        return min(usm.MAX_BOOTS, self.time + int(mono - self.at))


class UsmTransport:
    """v3 requests at the credential's security level: the engine ID discovered once (RFC 3414 4),
    the agent's clock learnt from its reports and answers, every answer checked (digest, engine ID,
    user, time window) before it is decrypted and decoded."""

    version = ber.V3

    def __init__(self, dispatcher: _Dispatcher, addr: tuple, credential: "SnmpCredential"):
        self._dispatcher = dispatcher
        self.addr = addr
        self._user = usm.User.of(credential)
        self._context = credential.context.encode()
        self._peer: _Peer | None = None
        self._salt = random.getrandbits(64)
        self._label = f"{addr[0]}:{addr[1]}"

    async def _discover(self, timeout: float) -> _Peer:
        data = await _v3_discovery(self._dispatcher, self.addr, timeout)
        if data is None:
            raise AttemptTimeout()
        try:
            msg = usm.parse_message(data)
        except ber.BerError as exc:
            raise SnmpProtocolError(f"{self._label}: malformed answer to v3 discovery: {exc}") from None
        if not msg.engine_id:
            raise SnmpProtocolError(f"{self._label}: answer to v3 discovery carries no engine ID")
        keys = usm.localize(self._user, msg.engine_id) if self._user.flags else None
        # Net-SNMP gives its clock in the discovery report; an agent that gives 0/0 corrects us with an
        # authenticated notInTimeWindows report on the first request (handled in send()).
        self._peer = _Peer(msg.engine_id, keys, msg.boots, msg.time, asyncio.get_running_loop().time())
        return self._peer

    async def send(self, pdu_type, oids, *, timeout, non_repeaters=0, max_repetitions=0) -> Answer:
        d = self._dispatcher
        loop = asyncio.get_running_loop()
        resynced = rediscovered = False
        while True:
            peer = self._peer or await self._discover(timeout)
            mid = d.next_id()
            self._salt += 1
            pdu = ber.encode_pdu(pdu_type, mid, oids, non_repeaters=non_repeaters, max_repetitions=max_repetitions)
            msg = usm.encode_message(mid, peer.keys, peer.engine_id, peer.boots, peer.now(loop.time()), pdu,
                                     user_name=self._user.name, context_engine_id=peer.engine_id,
                                     context_name=self._context, salt=self._salt)
            try:
                data = await d.exchange(mid, msg, self.addr, timeout)
            except AttemptTimeout:
                # A wrong privacy key is dropped in silence, and an agent that restarted with a new engine
                # ID may answer with a report we cannot match: discover it again on the next try.
                self._peer = None
                raise
            try:
                answer = usm.parse_message(data)
                report = self._check(answer, data, peer, loop.time())
                if report is None:
                    scoped = usm.plaintext(answer, peer.keys)  # _check checked the digest
                    _, _, ptype, rid, status, index, vbs = usm.decode_scoped_pdu(scoped)
                    if ptype == ber.REPORT:  # an encrypted report
                        report = usm.report_name(vbs) or "report"
            except ber.BerError as exc:
                raise SnmpProtocolError(f"{self._label}: malformed v3 answer: {exc}") from None
            except usm.UsmError as exc:
                raise SnmpProtocolError(f"{self._label}: v3 answer refused ({exc.report}): {exc}") from None
            if report == "unknownEngineIDs" and not rediscovered:
                self._peer, rediscovered = None, True
                continue
            if report == "notInTimeWindows" and not resynced:
                resynced = True  # _check took the agent's clock from the (authenticated) report
                continue
            if report is not None:
                why = _REPORT_WHY.get(report, f"agent sent a {report} report")
                raise SnmpAuthError(f"{self._label}: user {self._user.name.decode(errors='replace')!r}: {why}")
            if ptype != ber.RESPONSE or rid != mid:
                raise SnmpProtocolError(f"{self._label}: unexpected v3 answer (PDU 0x{ptype:02x}, request-id {rid})")
            return Answer(status, index, vbs)

    def _check(self, msg: "usm.Message", raw: bytes, peer: _Peer, mono: float) -> str | None:
        """The checks of RFC 3414 3.2 on an answer to our request. Returns the usmStats name when the
        answer is a report sent in clear (unauthenticated, or signed but not encrypted, as RFC 3414
        3.2.7 a says a notInTimeWindows report is), else None."""
        report = None
        if not msg.encrypted and usm.open_scoped(msg.data)[2] == ber.REPORT:
            report = usm.report_name(usm.decode_scoped_pdu(msg.data)[6]) or "report"
        if not msg.authenticated:
            if peer.keys is not None and report is None:
                raise usm.UsmError("unsupportedSecLevels", "unauthenticated answer to an authenticated request")
            return report
        if msg.engine_id != peer.engine_id:
            raise usm.UsmError("unknownEngineIDs", f"answer from engine {msg.engine_id.hex()}, "
                                                   f"not the agent's {peer.engine_id.hex()}")
        if msg.user_name != self._user.name:
            raise usm.UsmError("unknownUserNames", "answer for another user")
        usm.check_digest(msg, raw, peer.keys)
        # RFC 3414 3.2.7 b: a newer clock is taken, and so is the clock of a signed notInTimeWindows
        # report (what it is for); an answer older than the window is a replay.
        if (report == "notInTimeWindows" or msg.boots > peer.boots
                or (msg.boots == peer.boots and msg.time > peer.time)):
            peer.boots, peer.time, peer.at = msg.boots, msg.time, mono
        elif usm.is_replay(peer.boots, peer.time, msg.boots, msg.time):
            raise usm.UsmError("notInTimeWindows", f"answer stamped boots {msg.boots} time {msg.time}, older "
                                                   f"than the agent's {peer.boots}/{peer.time}: a replay?")
        return report

    async def alive(self, timeout: float) -> bool:
        return await _v3_discovery_answered(self._dispatcher, self.addr, timeout)


# ---------------------------------------------------------------------------------------------------
# The engine: per event loop


class Engine:
    """What a loop shares across devices: one UDP socket per address family, for every version."""

    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine]" = weakref.WeakKeyDictionary()

    def __init__(self):
        self._dispatchers: dict[int, _Dispatcher] = {}

    @classmethod
    def for_running_loop(cls) -> "Engine":
        loop = asyncio.get_running_loop()
        eng = cls._by_loop.get(loop)
        if eng is None:
            eng = cls._by_loop[loop] = cls()
        return eng

    async def _dispatcher(self, family: int) -> _Dispatcher:
        d = self._dispatchers.get(family)
        if d is None:
            loop = asyncio.get_running_loop()
            sock = socket.socket(family, socket.SOCK_DGRAM)
            # Answers of many devices at once land in this one buffer; net.core.rmem_max (often 208 KiB)
            # caps SO_RCVBUF, so ask past it when allowed (CAP_NET_ADMIN), else take what we get.
            for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                if opt is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, UDP_RCVBUF)
                    break
                except OSError:
                    continue
            sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))
            sock.setblocking(False)
            _, d = await loop.create_datagram_endpoint(_Dispatcher, sock=sock)
            self._dispatchers[family] = d
        return d

    async def session(self, host: str, credential: "SnmpCredential", *, port: int = 161, timeout: float = 2.0,
                      retries: int = 1, max_repetitions: int = 25) -> Session:
        addr = await resolve(host, port)
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        try:
            d = await self._dispatcher(family)
        except OSError as exc:
            raise SnmpError(f"{host}: cannot open a UDP socket for {'IPv6' if family == socket.AF_INET6 else 'IPv4'}: "
                            f"{exc.strerror or exc}") from None
        if credential.version == "3":
            transport = UsmTransport(d, addr, credential)
        else:
            version = ber.V1 if credential.version == "1" else ber.V2C
            transport = CommunityTransport(d, addr, version, credential.community.reveal().encode())
        label = f"[{addr[0]}]:{addr[1]}" if family == socket.AF_INET6 else f"{addr[0]}:{addr[1]}"
        return Session(transport, label=label, timeout=timeout, retries=retries, max_repetitions=max_repetitions,
                       credential_name=credential.name)

    def close(self) -> None:
        for d in self._dispatchers.values():
            if d.transport is not None:
                d.transport.close()
        self._dispatchers.clear()
        for loop, eng in list(self._by_loop.items()):
            if eng is self:
                del self._by_loop[loop]


async def resolve(host: str, port: int) -> tuple:
    """(ip, port) of a device; names are resolved once per session, not per PDU."""
    try:
        ip = ipaddress.ip_address(host)
        return (str(ip), port)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise SnmpError(f"cannot resolve {host!r}: {exc.strerror}") from None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)  # prefer IPv4, like Net-SNMP
    return infos[0][4][:2]
