"""A minimal real SnmpClient (pysnmp 7, v2c) for the integration tests.

Stand-in until the network side's probe/sources/snmp/engine.py is merged: the tests take whichever
exists (see tests/integration/test_snmpsim_recordings.py). One SnmpEngine per event loop, numeric
OIDs, lookupMib=False, lexicographicMode=False; the walk keeps the Protocol's guards (row cap,
non-increasing OIDs). Counts PDUs, retries are pysnmp's own (not counted), timeouts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from probe.sources.snmp.client import (
    COUNTER32, COUNTER64, END_OF_MIB_VIEW, GAUGE32, INTEGER, IPADDR, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL, OBJECT_ID,
    OCTETS, OPAQUE, TIMETICKS, Oid, SnmpProtocolError, SnmpTimeout, Varbind, format_oid,
)

_TYPES = {"Integer": INTEGER, "Integer32": INTEGER, "OctetString": OCTETS, "Bits": OCTETS, "Null": NULL,
          "ObjectIdentifier": OBJECT_ID, "IpAddress": IPADDR, "Counter32": COUNTER32, "Gauge32": GAUGE32,
          "Unsigned32": GAUGE32, "TimeTicks": TIMETICKS, "Opaque": OPAQUE, "Counter64": COUNTER64,
          "NoSuchObject": NO_SUCH_OBJECT, "NoSuchInstance": NO_SUCH_INSTANCE, "EndOfMibView": END_OF_MIB_VIEW}


def to_varbind(name, value) -> Varbind:
    oid = tuple(name)
    typ = _TYPES.get(type(value).__name__)
    if typ is None:
        raise SnmpProtocolError(f"{format_oid(oid)}: unexpected value type {type(value).__name__}")
    if typ in (INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
        return Varbind(oid, typ, int(value))
    if typ in (OCTETS, OPAQUE):
        return Varbind(oid, typ, bytes(value.asOctets()))
    if typ == OBJECT_ID:
        return Varbind(oid, typ, tuple(value))
    if typ == IPADDR:
        return Varbind(oid, typ, ".".join(str(b) for b in value.asOctets()))
    return Varbind(oid, typ, None)


@dataclass
class Stats:
    pdus: int = 0
    retries: int = 0
    timeouts: int = 0


class PysnmpTestClient:
    def __init__(self, engine, host: str, port: int, community: str, *, timeout: float = 2.0, retries: int = 1,
                 max_repetitions: int = 25):
        self.engine, self.host, self.port, self.community = engine, host, port, community
        self.timeout, self.retries, self.max_repetitions = timeout, retries, max_repetitions
        self.stats = Stats()
        self._target = None

    async def _tgt(self):
        from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

        if self._target is None:
            self._target = await UdpTransportTarget.create((self.host, self.port), timeout=self.timeout,
                                                           retries=self.retries)
        return self._target

    def _check(self, err_ind, err_status, err_index, what: str) -> None:
        if err_ind:
            if "timeout" in str(err_ind).lower() or "timed out" in str(err_ind).lower():
                self.stats.timeouts += 1
                raise SnmpTimeout(f"{what}: {err_ind}")
            raise SnmpProtocolError(f"{what}: {err_ind}")
        if err_status:
            raise SnmpProtocolError(f"{what}: {err_status.prettyPrint()} at {int(err_index)}")

    async def get(self, oids: Sequence[Oid]) -> list[Varbind]:
        from pysnmp.hlapi.v3arch.asyncio import CommunityData, ContextData, ObjectIdentity, ObjectType, get_cmd

        self.stats.pdus += 1
        ei, es, ix, vbs = await get_cmd(self.engine, CommunityData(self.community), await self._tgt(), ContextData(),
                                        *[ObjectType(ObjectIdentity(format_oid(o))) for o in oids], lookupMib=False)
        self._check(ei, es, ix, f"GET {format_oid(oids[0]) if oids else ''}")
        return [to_varbind(n, v) for n, v in vbs]

    async def walk(self, root: Oid, *, max_rows: int = 10000) -> list[Varbind]:
        from pysnmp.hlapi.v3arch.asyncio import CommunityData, ContextData, ObjectIdentity, ObjectType, bulk_cmd

        root = tuple(root)
        rows: list[Varbind] = []
        cur = root
        while True:
            self.stats.pdus += 1
            ei, es, ix, vbs = await bulk_cmd(self.engine, CommunityData(self.community), await self._tgt(),
                                             ContextData(), 0, self.max_repetitions,
                                             ObjectType(ObjectIdentity(format_oid(cur))), lookupMib=False)
            self._check(ei, es, ix, f"walk {format_oid(root)}")
            if not vbs:
                return rows
            for name, value in vbs:
                vb = to_varbind(name, value)
                if vb.type == END_OF_MIB_VIEW or vb.oid[:len(root)] != root:
                    return rows
                if vb.oid <= cur:
                    raise SnmpProtocolError(f"walk {format_oid(root)}: non-increasing OID {format_oid(vb.oid)}")
                if len(rows) >= max_rows:
                    raise SnmpProtocolError(f"walk {format_oid(root)}: more than {max_rows} rows (endless table?)")
                rows.append(vb)
                cur = vb.oid
