"""Which credential a device answers to: tried in order, the one that worked remembered.

The candidates for a device are its target's `credentials` (config), else those of the first client
subnet that contains it and names some, else every configured credential. The one that worked last
time (kept in the state store, so a restart does not re-probe every device) goes first. Each is
tried with one cheap GET (sysObjectID.0); the first that answers wins.

How the others failed is reported, not lost: a credential refused while another one is answered is
an auth failure even when the refusal was a silence (a wrong community never answers), and when none
answers the error is `SnmpAuthError` if any was refused outright or the agent answered SNMPv3
discovery, else `SnmpTimeout`.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from probe.sources.snmp.client import SnmpError
from probe.sources.snmp.engine import RequestStats

if TYPE_CHECKING:
    from probe.config import Config, SnmpCredential
    from probe.sources.snmp.engine import Engine, Session
    from probe.state.store import Store

SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)

_DDL = ["""CREATE TABLE IF NOT EXISTS snmp_credential (
    address TEXT NOT NULL, port INTEGER NOT NULL, credential TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (address, port))"""]


def candidates(config: "Config", address: str, explicit: Sequence[str] = ()) -> list["SnmpCredential"]:
    """The credentials to try for a device, in configured order (before the remembered one moves up)."""
    creds = config.snmp.credentials
    by_name = {c.name: c for c in creds}
    if explicit:
        return [by_name[n] for n in explicit if n in by_name]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        for subnet in config.subnets:
            if subnet.credentials and ip.version == subnet.cidr.version and ip in subnet.cidr:
                return [by_name[n] for n in subnet.credentials if n in by_name]
    return list(creds)


class CredentialMemory:
    """The credential that last worked per device, in the state store (or only in memory)."""

    def __init__(self, store: "Store | None" = None, *, limit: int = 100_000):
        self.store = store
        self._mem: dict[tuple[str, int], str] = {}
        self.limit = limit
        if store is not None:
            store.ensure_schema("snmp_credential", 1, _DDL)
            for address, port, name in store.query(
                    "SELECT address, port, credential FROM snmp_credential ORDER BY updated DESC LIMIT ?", (limit,)):
                self._mem[(address, int(port))] = name

    def get(self, address: str, port: int) -> str | None:
        return self._mem.get((address, port))

    def remember(self, address: str, port: int, name: str) -> None:
        key = (address, port)
        if self._mem.get(key) == name:
            return
        if key not in self._mem and len(self._mem) >= self.limit:
            self._mem.pop(next(iter(self._mem)))
        self._mem[key] = name
        if self.store is not None:
            self.store.write("INSERT OR REPLACE INTO snmp_credential(address, port, credential, updated) "
                             "VALUES (?, ?, ?, ?)", (address, port, name, time.time()))


@dataclass
class Refusal:
    credential: str
    kind: str      # "auth" or "timeout" (as first seen; a timeout becomes auth when another answered)
    message: str


class NoCredentialAnswered(SnmpError):
    """None of a device's credentials was answered; `kind` says whether any was refused (auth)."""

    def __init__(self, message: str, kind: str, refusals: list[Refusal]):
        super().__init__(message)
        self.kind = kind
        self.refusals = refusals


def order(creds: Iterable["SnmpCredential"], remembered: str | None) -> list["SnmpCredential"]:
    creds = list(creds)
    if remembered:
        creds.sort(key=lambda c: c.name != remembered)  # stable: the rest keep their order
    return creds


async def select(engine: "Engine", address: str, creds: Sequence["SnmpCredential"], *, port: int = 161,
                 timeout: float = 2.0, retries: int = 1, max_repetitions: int = 25,
                 memory: CredentialMemory | None = None, spent: "RequestStats | None" = None,
                 ) -> tuple["Session", list[Refusal]]:
    """A session on the first credential the device answers, and how the ones before it failed.
    Raises NoCredentialAnswered (kind "auth" or "timeout") when none answers. What the probing put on
    the wire is added to `spent` (the winning session's own stats start from zero after it)."""
    if not creds:
        raise NoCredentialAnswered(f"{address}:{port}: no SNMP credential applies to this device", "auth", [])
    refusals: list[Refusal] = []
    alive: bool | None = None  # the discovery probe's answer, asked once per selection, not per credential
    for i, cred in enumerate(order(creds, memory.get(address, port) if memory else None)):
        # The remembered (or only) credential gets the configured retries; probing the others gets
        # one try each, so a dead device costs one timeout per credential, not retries times that.
        try:
            session = await engine.session(address, cred, port=port, timeout=timeout,
                                           retries=retries if i == 0 else 0, max_repetitions=max_repetitions)
        except SnmpError as exc:  # the name does not resolve, no socket for its address family...
            raise NoCredentialAnswered(str(exc), "unreachable", refusals) from None
        if alive is not None and hasattr(session, "alive"):
            session.alive = alive
        try:
            await session.get([SYS_OBJECT_ID])
        except SnmpError as exc:
            alive = getattr(session, "alive", None) if alive is None else alive
            refusals.append(Refusal(cred.name, exc.kind, str(exc)))
            await session.close()
            continue
        finally:
            if spent is not None:
                s = session.stats
                spent.pdus, spent.retries, spent.timeouts = (spent.pdus + s.pdus, spent.retries + s.retries,
                                                             spent.timeouts + s.timeouts)
        session.stats = RequestStats()
        session.retries = retries
        if memory is not None:
            memory.remember(address, port, cred.name)
        for r in refusals:  # another credential was answered: the silent ones were refused
            if r.kind == "timeout":
                r.kind = "auth"
                r.message += " (another credential is answered: wrong community or key)"
        return session, refusals
    kinds = {r.kind for r in refusals}
    kind = "auth" if "auth" in kinds else ("timeout" if kinds <= {"timeout"} else "protocol")
    detail = "; ".join(f"{r.credential}: {r.message.split(': ', 1)[-1]}" for r in refusals)
    if kind == "auth":
        msg = f"{address}:{port}: agent refused every credential ({detail})"
    elif kind == "timeout":
        msg = f"{address}:{port}: no answer with any credential ({detail})"
    else:
        msg = f"{address}:{port}: no credential gave a usable answer ({detail})"
    raise NoCredentialAnswered(msg, kind, refusals)


__all__ = ["CredentialMemory", "NoCredentialAnswered", "Refusal", "candidates", "order", "select"]
