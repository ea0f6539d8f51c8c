"""The SNMP notification receiver: traps and informs in, findings and confirming polls out.

    listener (probe/sources/snmp/traps.py) -> queue -> handle() -> TrapRules (probe/findings/trap_rules.py)
                                                               -> ledger (same SnmpFinding path as polls)
                                                               -> inventory (last heard, last trap)
                                                               -> a poll of the device now (ctx.snmp_poller)
    every poll of a device -> TrapRules.confirm -> the conditions its traps raised, held or cleared

- Known devices: those the SNMP poller polls (snmp.targets and discovered agents), matched on the UDP
  source address, else on the v1 agent-addr / snmpTrapAddress.0 the notification names; a device the
  inventory knows as an SNMP agent is handed to the poller first (snmp.poll_discovered). Findings carry
  the poller's `target`, as the poll findings do, so a trap and its polls are one episode.
- Unknown sources: counted, logged, and a snmp_trap_unknown_source finding (a device nobody set up).
- Communities: those of snmp.credentials (v1 and v2c); v3 users: its version 3 entries. Reloads take the
  new ones at once. The listen address takes effect on reload too (the socket is bound again).
- The receiver's SNMPv3 engine (what v3 informs are sent to): snmp.traps.engine_id, else one generated
  once and kept, with the boots counter (one more each start), in state_dir/ENGINE_FILE; without a
  state_dir, a new engine ID each process and boots 1.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

from probe.config.web import split_listen_address
from probe.exposition.snmp_trap_collector import LabelCap, SnmpTrapCollector
from probe.findings.model import Cleared
from probe.findings.trap_rules import DeviceView, TrapRules, oid_name, trap_name
from probe.sources.snmp import usm
from probe.sources.snmp.traps import Received, TrapListener, check_engine_id, listen, new_engine_id
from probe.subsystems.base import Activity, Context, Health, Status

if TYPE_CHECKING:
    from probe.config import Config

_log = logging.getLogger(__name__)


def communities(config: "Config") -> list[str]:
    return [c.community.reveal() for c in config.snmp.credentials if c.version in ("1", "2c") and c.community]


def v3_users(config: "Config") -> list[usm.User]:
    return [usm.User.of(c) for c in config.snmp.credentials if c.version == "3" and c.username]


ENGINE_FILE = "snmp_trap_engine.json"


def local_engine(config: "Config") -> tuple[bytes, int]:
    """(engine ID, boots) of the receiver's SNMPv3 engine for this start (see the module docstring)."""
    configured = bytes.fromhex(config.snmp.traps.engine_id) if config.snmp.traps.engine_id else None
    if not config.state_dir:
        return configured or new_engine_id(), 1
    path = os.path.join(config.state_dir, ENGINE_FILE)
    engine_id, boots = None, 0
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        engine_id, boots = bytes.fromhex(saved["engine_id"]), int(saved["boots"])
        check_engine_id(engine_id)
        if not 0 <= boots < usm.MAX_BOOTS:
            raise ValueError(f"boots {boots} out of range")
    except FileNotFoundError:
        engine_id = None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("%s: unreadable SNMPv3 engine state (%s): starting a new engine ID", path, exc)
        engine_id, boots = None, 0
    engine_id = engine_id or new_engine_id()
    boots = min(boots + 1, usm.MAX_BOOTS)
    try:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"engine_id": engine_id.hex(), "boots": boots}, f)
        os.replace(tmp, path)
    except OSError as exc:
        _log.warning("%s: cannot keep the SNMPv3 engine state (%s): the next start counts the same boots, and "
                     "v3 inform senders may refuse its answers until they discover it again", path, exc)
    return configured or engine_id, boots


def rules_from_config(config: "Config") -> TrapRules:
    t = config.snmp.traps
    return TrapRules(uplinks={u.device: frozenset(u.interfaces) for u in t.uplinks}, uplink_alias=t.uplink_alias or None,
                     clear_polls=config.snmp.findings.clear_polls, unknown_severity=t.unknown_source_severity)


def device_view(dev) -> DeviceView:
    """What the poller's Device knows, for the rules."""
    mem = getattr(dev, "memory", None)
    boot_at = None
    if mem is not None and mem.uptime_ticks is not None and mem.uptime_at is not None:
        boot_at = mem.uptime_at - mem.uptime_ticks / 100.0
    return DeviceView.from_data(dev.data(), restarts=mem.restarts if mem is not None else None, boot_at=boot_at,
                                refused_at=dev.last_poll if getattr(dev, "refusals", None) else None)


class SnmpTrapsSubsystem:
    name = "snmp_traps"

    def __init__(self, config: "Config", ctx: Context):
        self.config = config
        self.ctx = ctx
        self.status = Status()
        t = config.snmp.traps
        self.rules = rules_from_config(config)
        engine_id, boots = local_engine(config)
        self.listener = TrapListener(communities(config), users=v3_users(config), engine_id=engine_id,
                                     engine_boots=boots, queue_size=t.queue_size, rate=t.rate_per_source,
                                     burst=t.burst_per_source, max_sources=t.max_sources, clock=ctx.clock)
        self.received: dict[tuple[str, str], int] = {}
        self._source_label = LabelCap(t.metric_sources_max)
        self._trap_label = LabelCap(t.metric_traps_max)
        self.unknown_source_total = 0
        self.confirm_polls_total = 0
        self.handled_total = 0
        self._transport = None
        self._bound: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._confirming: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()
        self._observing = None

    @property
    def poller(self):
        return self.ctx.snmp_poller

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.config.snmp.traps.enabled:
            self.status.set(Health.DISABLED, "snmp.traps.enabled is false")
            return
        if not await self._bind():
            return
        self._tasks = [asyncio.ensure_future(self._consume())]
        if self.poller is not None and self._observing is not self.poller:
            self.poller.observers.append(self.after_poll)
            self._observing = self.poller
        if not communities(self.config) and not v3_users(self.config):
            self.status.set(Health.DEGRADED, "no credential in snmp.credentials: every notification is dropped "
                                             "(unknown_community, unknown_user)")
        else:
            self.status.set(Health.OK, "")

    async def _bind(self) -> bool:
        addr = self.config.snmp.traps.listen_address
        host, port = split_listen_address(addr)
        try:
            self._transport = await listen(self.listener, host, port)
        except OSError as exc:
            hint = " (ports below 1024 need CAP_NET_BIND_SERVICE: see systemd/sitevigil.service, or use a port " \
                   "above 1023 and forward 162 to it)" if port < 1024 and exc.errno == 13 else ""
            msg = f"cannot listen for SNMP notifications on {addr}: {exc.strerror or exc}{hint}"
            _log.error("%s", msg)
            self.status.set(Health.FAILED, msg)
            self._transport = None
            return False
        self._bound = addr
        _log.info("receiving SNMP notifications on %s (udp)", addr)
        return True

    async def stop(self) -> None:
        if self._observing is not None and self.after_poll in self._observing.observers:
            self._observing.observers.remove(self.after_poll)
        self._observing = None
        tasks = self._tasks + list(self._confirming.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._confirming = [], {}
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._bound = None

    async def reload(self, config: "Config") -> None:
        old = self.config.snmp.traps
        self.config = config
        t = config.snmp.traps
        self.listener.set_communities(communities(config))
        self.listener.set_users(v3_users(config))
        if t.engine_id and bytes.fromhex(t.engine_id) != self.listener.v3.engine_id:
            self.listener.v3.engine_id = bytes.fromhex(t.engine_id)
        rules = rules_from_config(config)
        rules._held = self.rules._held  # what the traps raised so far stays
        self.rules = rules
        if not t.enabled:
            if old.enabled:
                await self.stop()
            self.status.set(Health.DISABLED, "snmp.traps.enabled is false")
            return
        if not old.enabled or t.listen_address != self._bound or self._transport is None:
            await self.stop()
            await self.start()

    def collectors(self):
        return [SnmpTrapCollector(self.metrics)]

    def routes(self):
        return []

    def activity(self) -> Activity:
        return Activity()  # the polls a trap triggers are the poller's, counted by the SNMP subsystem

    def describe(self) -> dict:
        return {"listen_address": self.config.snmp.traps.listen_address, "listening": self._transport is not None,
                "received": self.listener.accepted_total, "dropped": dict(self.listener.dropped_total),
                "informs_acknowledged": self.listener.informs_acknowledged_total,
                "unknown_source": self.unknown_source_total, "last_drops": list(self.listener.last_drops)[-5:],
                "snmpv3_engine_id": self.listener.v3.engine_id.hex(), "snmpv3_engine_boots": self.listener.v3.boots,
                "usm_stats": dict(self.listener.v3.stats), "v3_reports_sent": self.listener.reports_sent_total,
                "held_conditions": len(self.rules.held())}

    def metrics(self) -> dict:
        ln = self.listener
        return {"received": dict(self.received), "dropped": dict(ln.dropped_total),
                "informs_acknowledged": ln.informs_acknowledged_total, "unknown_source": self.unknown_source_total,
                "confirm_polls": self.confirm_polls_total, "queue_length": ln.queue.qsize(),
                "queue_capacity": ln.queue.maxsize, "sources_tracked": len(ln.limiter),
                "listening": self._transport is not None, "enabled": self.config.snmp.traps.enabled}

    # -- handling -------------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            item = await self.listener.queue.get()
            try:
                self.handle(item)
            except Exception:  # one odd notification must not stop the receiver
                _log.exception("SNMP notification from %s: handling failed", item.source)

    def _known(self, item: Received):
        """The poller's Device this notification is from, or None."""
        poller = self.poller
        if poller is None:
            return None
        addrs = [item.source] + [a for a in (item.note.agent_addr,) if a and a != item.source and a != "0.0.0.0"]
        by_addr = {}
        for d in poller.devices():
            by_addr.setdefault(d.address, d)
        for a in addrs:
            if a in by_addr:
                return by_addr[a]
        inv = self.ctx.devices.inventory  # Context builds one when the daemon hands none
        for a in addrs:  # an SNMP agent the inventory knows but the poller does not poll yet
            known = inv.find_ip(a)
            if known is not None and known.snmp and poller.add_target(a):
                return next((d for d in poller.devices() if d.address == a), None)
        return None

    def handle(self, item: Received) -> list:
        """One notification: metrics, log, findings, inventory, confirming poll. Returns the reports."""
        note = item.note
        self.handled_total += 1
        name = trap_name(note.trap_oid)
        key = (self._source_label(item.source), self._trap_label(name))
        self.received[key] = self.received.get(key, 0) + 1
        args = ", ".join(f"{oid_name(vb.oid)}={_show(vb.value)}" for vb in note.varbinds[:8])
        dev = self._known(item)
        _log.info("SNMP %s from %s%s: %s%s", "inform" if note.is_inform else "trap", item.source,
                  "" if dev is not None else " (not a polled device)", name, f" [{args}]" if args else "")
        if dev is None:
            self.unknown_source_total += 1
            f = self.rules.unknown_source(item.source, note, item.at)
            self.ctx.ledger.submit([f.to_finding()])
            return [f]
        reports = self.rules.observe(dev.target, note, device_view(dev), item.at)
        self.ctx.ledger.submit([r if isinstance(r, Cleared) else r.to_finding() for r in reports])
        self._inventory(dev, name, item.at)
        if self.config.snmp.traps.confirm_poll:
            self.confirm(dev)
        return reports

    def _inventory(self, dev, name: str, at: float) -> None:
        devices = self.ctx.devices
        if devices is None:
            return
        known = devices.inventory.find_ip(dev.address)
        devices.observe(known.mac if known else None, dev.address, source="snmp_trap", ts=at,
                        facts={"snmp_last_trap": name})

    def confirm(self, dev) -> None:
        """Poll `dev` now; one confirming poll at a time per device, and one more if notifications came
        during it (a storm of traps costs two polls, not one each)."""
        if self.poller is None:
            return
        if dev.target in self._confirming:
            self._again.add(dev.target)
            return
        self._confirming[dev.target] = asyncio.ensure_future(self._confirm(dev))

    async def _confirm(self, dev) -> None:
        try:
            while True:
                self._again.discard(dev.target)
                self.confirm_polls_total += 1
                try:
                    await self.poller.poll(dev)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    _log.exception("SNMP confirming poll of %s failed", dev.target)
                if dev.target not in self._again:
                    break
        finally:
            self._confirming.pop(dev.target, None)

    def after_poll(self, dev, result) -> None:
        """Poller observer: the conditions this device's traps raised, held or cleared by what it answered."""
        if not self.rules.holds_for(dev.target):
            return
        now = float(getattr(result, "started_at", 0.0) or self.ctx.clock())
        reports = self.rules.confirm(dev.target, device_view(dev), now)
        if reports:
            self.ctx.ledger.submit([r if isinstance(r, Cleared) else r.to_finding() for r in reports])


def _show(value) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return repr(text[:64]) if text.isprintable() else value[:32].hex()
    if isinstance(value, tuple):
        return oid_name(value)
    return str(value)


def factory(config: "Config", ctx: Context) -> SnmpTrapsSubsystem:
    return SnmpTrapsSubsystem(config, ctx)
