"""The reference the tests hold our SNMPv3 path (probe/sources/snmp/usm.py) to: the same `Transport`
(probe/sources/snmp/engine.py) built on pysnmp's command generator, on one pysnmp SnmpEngine per
event loop, below hlapi (no MIB resolution). It is what the probe used before its own USM; the lab
tests walk the same agents with the same keys through both and compare answers and errors.

    session = await pysnmp_session(host, credential, timeout=2, retries=1)
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref

from probe.sources.snmp import ber
from probe.sources.snmp.client import END_OF_MIB_VIEW, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, SnmpAuthError, SnmpProtocolError, Varbind
from probe.sources.snmp.engine import Answer, AttemptTimeout, Engine, Session, _expire, _v3_discovery, _v3_discovery_answered, resolve

AUTH_PROTOCOLS = {
    "MD5": "USM_AUTH_HMAC96_MD5", "SHA": "USM_AUTH_HMAC96_SHA", "SHA224": "USM_AUTH_HMAC128_SHA224",
    "SHA256": "USM_AUTH_HMAC192_SHA256", "SHA384": "USM_AUTH_HMAC256_SHA384", "SHA512": "USM_AUTH_HMAC384_SHA512",
}
# AES192/AES256 follow draft-blumenthal-aes-usm (Net-SNMP's AES-192/AES-256); the "C" variants are the
# Reeder key extension that Cisco uses (Net-SNMP's AES-192-C/AES-256-C).
PRIV_PROTOCOLS = {
    "DES": "USM_PRIV_CBC56_DES", "AES": "USM_PRIV_CFB128_AES", "AES128": "USM_PRIV_CFB128_AES",
    "AES192": "USM_PRIV_CFB192_AES_BLUMENTHAL", "AES256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
    "AES192C": "USM_PRIV_CFB192_AES", "AES256C": "USM_PRIV_CFB256_AES",
}

_AUTH_INDICATIONS = {
    "UnknownUserName": "agent does not know the v3 user (usmStatsUnknownUserNames)",
    "UnknownSecurityName": "agent does not know the v3 user (usmStatsUnknownUserNames)",
    "WrongDigest": "wrong v3 auth key or protocol (usmStatsWrongDigests)",
    "AuthenticationFailure": "wrong v3 auth key or protocol (authenticator mismatch)",
    "AuthenticationError": "wrong v3 auth key or protocol",
    "DecryptionError": "wrong v3 privacy key or protocol (usmStatsDecryptionErrors)",
    "UnsupportedSecurityLevel": "agent does not allow this v3 security level (usmStatsUnsupportedSecLevels)",
    "NoAuthentication": "v3 authentication not available",
}


def _usm_value(val) -> tuple[str, object]:
    name = type(val).__name__
    if name in ("Integer32", "Integer"):
        return "Integer32", int(val)
    if name in ("OctetString", "Bits", "DisplayString"):
        return "OctetString", val.asOctets()
    if name == "ObjectIdentifier":
        return "ObjectIdentifier", tuple(val)
    if name == "IpAddress":
        return "IpAddress", "%d.%d.%d.%d" % tuple(val.asOctets())
    if name in ("Counter32", "Counter64", "TimeTicks"):
        return name, int(val)
    if name in ("Gauge32", "Unsigned32"):
        return "Gauge32", int(val)
    if name == "Opaque":
        return "Opaque", val.asOctets()
    if name == "NoSuchObject":
        return NO_SUCH_OBJECT, None
    if name == "NoSuchInstance":
        return NO_SUCH_INSTANCE, None
    if name == "EndOfMibView":
        return END_OF_MIB_VIEW, None
    if name == "Null":
        return "Null", None
    return "OctetString", bytes(val) if hasattr(val, "__bytes__") else str(val).encode()


class PysnmpUsmTransport:
    version = ber.V3

    def __init__(self, pysnmp_engine, dispatcher: _Dispatcher, addr: tuple, credential: "SnmpCredential"):
        self._engine = pysnmp_engine
        self._dispatcher = dispatcher
        self.addr = addr
        self._cred = credential
        self._target_name = None
        self._context = credential.context

    async def _configure(self, timeout: float):
        from pysnmp.hlapi.v3arch import asyncio as hl
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD

        c = self._cred
        kw = {}
        if c.auth_protocol:
            kw["authKey"] = c.auth_key.reveal()
            kw["authProtocol"] = getattr(hl, AUTH_PROTOCOLS[c.auth_protocol])
        if c.priv_protocol:
            kw["privKey"] = c.priv_key.reveal()
            kw["privProtocol"] = getattr(hl, PRIV_PROTOCOLS[c.priv_protocol])
        # pysnmp keys its USM rows by (engine ID, user name) and, left to itself, clones every peer's
        # row from one template per user name: two credentials with the same user name and different
        # keys (common across a client's devices) would overwrite each other's keys while both are in
        # use. Discovering the engine ID ourselves and giving it makes one row per device.
        answer = await _v3_discovery(self._dispatcher, self.addr, timeout)
        engine_id = ber.v3_engine_id(answer) if answer is not None else None
        if engine_id is None:
            raise AttemptTimeout()
        kw["securityEngineId"] = engine_id
        user = hl.UsmUserData(c.username, **kw)
        # pysnmp counts timeouts in 10 ms ticks; our Session does the retries.
        cls = hl.UdpTransportTarget if ipaddress.ip_address(self.addr[0]).version == 4 else hl.Udp6TransportTarget
        target = await cls.create(self.addr, timeout=timeout, retries=0)
        self._target_name, _ = LCD.configure(self._engine, user, target, self._context)

    async def send(self, pdu_type, oids, *, timeout, non_repeaters=0, max_repetitions=0) -> Answer:
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.proto.api import v2c
        from pysnmp.proto.error import StatusInformation

        if self._target_name is None:
            await self._configure(timeout)
        if pdu_type == ber.GET:
            pdu = v2c.GetRequestPDU()
        elif pdu_type == ber.GETNEXT:
            pdu = v2c.GetNextRequestPDU()
        else:
            pdu = v2c.GetBulkRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        if pdu_type == ber.GETBULK:
            v2c.apiBulkPDU.set_non_repeaters(pdu, non_repeaters)
            v2c.apiBulkPDU.set_max_repetitions(pdu, max_repetitions)
        v2c.apiPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(o), v2c.null) for o in oids])
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(engine, handle, indication, rpdu, ctx):
            if not fut.done():
                fut.set_result((indication, rpdu))

        gen = cmdgen.CommandGenerator()
        try:
            gen.send_pdu(self._engine, self._target_name, None, self._context, pdu, done, None)
        except StatusInformation as exc:  # refused before anything was sent (e.g. no such user row)
            fut.set_result((exc["errorIndication"], None))
        # pysnmp's own timer ends the request; ours is a backstop in case its dispatcher stalls.
        timer = loop.call_later(timeout + 1.0, _expire, fut)
        try:
            indication, rpdu = await fut
        finally:
            timer.cancel()
        if indication is not None:
            kind = type(indication).__name__
            if kind == "RequestTimedOut":
                # The agent may have restarted with a new engine ID: discover it again next try.
                self._forget_engine_id()
                self._target_name = None
                raise AttemptTimeout()
            if kind in _AUTH_INDICATIONS:
                raise SnmpAuthError(f"{self.addr[0]}:{self.addr[1]}: user {self._cred.username!r}: "
                                    f"{_AUTH_INDICATIONS[kind]}")
            raise SnmpProtocolError(f"{self.addr[0]}:{self.addr[1]}: {indication}")
        status = int(v2c.apiPDU.get_error_status(rpdu))
        index = int(v2c.apiPDU.get_error_index(rpdu, muteErrors=True))
        vbs = []
        for name, val in v2c.apiPDU.get_varbinds(rpdu):
            t, v = _usm_value(val)
            vbs.append(Varbind(tuple(name), t, v))
        return Answer(status, index, vbs)

    def _forget_engine_id(self) -> None:
        """Make pysnmp discover the agent's engine ID again on the next try.

        An agent that restarted with a new engine ID answers requests for the old one with a
        usmStatsUnknownEngineIDs report carrying request-id 0 (it cannot decrypt ours), which pysnmp
        does not match to the request: it times out for ever. Dropping the cached peer engine data
        after a timeout costs one discovery round-trip on a retry and recovers from that."""
        for mp in self._engine.message_processing_subsystems.values():
            cache = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCache", None)
            if cache:
                for key in [k for k in cache if tuple(k[1][:2]) == tuple(self.addr)]:
                    del cache[key]

    async def alive(self, timeout: float) -> bool:
        return await _v3_discovery_answered(self._dispatcher, self.addr, timeout)


_pysnmp_engines: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()


async def pysnmp_session(host: str, credential, *, port: int = 161, timeout: float = 2.0, retries: int = 1,
                         max_repetitions: int = 25) -> Session:
    """A Session like Engine.session's for a v3 credential, over pysnmp."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    loop = asyncio.get_running_loop()
    snmp_engine = _pysnmp_engines.get(loop)
    if snmp_engine is None:
        snmp_engine = _pysnmp_engines[loop] = SnmpEngine()
    addr = await resolve(host, port)
    dispatcher = await Engine.for_running_loop()._dispatcher(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
    transport = PysnmpUsmTransport(snmp_engine, dispatcher, addr, credential)
    return Session(transport, label=f"{addr[0]}:{addr[1]}", timeout=timeout, retries=retries,
                   max_repetitions=max_repetitions, credential_name=credential.name)
