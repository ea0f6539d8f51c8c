"""The interface between SNMP modules and the network.

Modules (system, interfaces, storage, printer, ups, inventory...) ask a `SnmpClient` for GETs and
table walks and turn the varbinds into results. The real client (probe/sources/snmp/engine.py)
and the fakes used by unit tests (a recording read from an .snmprec file, probe/sources/snmp/snmprec.py)
implement the same Protocol, so modules never know which one they talk to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

Oid = tuple[int, ...]

# Value types, as SNMP's SMI names them (and snmprec's numeric tags).
INTEGER = "Integer32"          # tag 2
OCTETS = "OctetString"         # tag 4
NULL = "Null"                  # tag 5
OBJECT_ID = "ObjectIdentifier"  # tag 6
IPADDR = "IpAddress"           # tag 64
COUNTER32 = "Counter32"        # tag 65
GAUGE32 = "Gauge32"            # tag 66
TIMETICKS = "TimeTicks"        # tag 67
OPAQUE = "Opaque"              # tag 68
COUNTER64 = "Counter64"        # tag 70
# Exceptions in a response (v2c/v3), not errors of the whole request:
NO_SUCH_OBJECT = "noSuchObject"
NO_SUCH_INSTANCE = "noSuchInstance"
END_OF_MIB_VIEW = "endOfMibView"


@dataclass(frozen=True, slots=True)
class Varbind:
    oid: Oid
    type: str  # one of the names above
    value: int | bytes | Oid | str | None  # int for numbers, bytes for octets, Oid for OIDs, "a.b.c.d" for IpAddress


def parse_oid(text: str) -> Oid:
    return tuple(int(x) for x in text.strip(".").split(".") if x)


def format_oid(oid: Oid) -> str:
    return ".".join(str(x) for x in oid)


class SnmpError(Exception):
    """Base of the errors a client raises; `kind` is a short stable label for metrics."""

    kind = "error"


class SnmpTimeout(SnmpError):
    kind = "timeout"


class SnmpAuthError(SnmpError):
    """Wrong community (seen as a timeout on the wire, told apart by the caller's retry logic) or
    wrong v3 user/key (reported by the agent: unknownUserName, wrongDigest, decryptionError...)."""

    kind = "auth"


class SnmpProtocolError(SnmpError):
    """The agent answered with an error status (tooBig, genErr...) or broke the protocol
    (non-increasing OIDs, endless tables)."""

    kind = "protocol"


class SnmpClient(Protocol):
    async def get(self, oids: Sequence[Oid]) -> list[Varbind]:
        """GET of several OIDs in one request; missing ones come back as noSuchObject/noSuchInstance."""

    async def walk(self, root: Oid, *, max_rows: int = 10000) -> list[Varbind]:
        """Every varbind under `root`, in OID order (GETBULK for v2c/v3, GETNEXT for v1).
        Stops at the end of the subtree, at max_rows (raises SnmpProtocolError naming the table), or
        when the agent returns a non-increasing OID (SnmpProtocolError)."""
