"""SNMPv3 notifications into the receiver (probe/sources/snmp/traps.py UsmReceiver): traps and informs
for several auth/priv pairs, the USM refusals (unknown user, wrong digest, security level, decryption,
replays outside the time window) and the Reports an inform sender gets, the Response to an inform read
back with the sender's keys, every truncation a counted drop, the engine ID and boots kept in the state
directory, and the v3 users taken from snmp.credentials on start and reload. The PDUs are encoded by
pysnmp (an independent encoder), wrapped by usm.encode_message (tested against Net-SNMP on its own);
Net-SNMP's snmptrap/snmpinform -v3 are in tests/integration/test_snmp_traps_v3_netsnmp.py."""
from __future__ import annotations

import asyncio
import json
import random

import pytest
from pyasn1.codec.ber import encoder as pyasn1_encoder
from pysnmp.proto.api import v2c

from probe.config import ConfigError, load_text
from probe.sources.snmp import ber, usm
from probe.sources.snmp import mibtables as T
from probe.sources.snmp.traps import (
    DROP_REASONS, ENGINE_ID_PREFIX, Notification, TrapDropped, TrapListener, UsmReceiver,
    decode_notification, inform_response,
)
from tests.unit.test_snmp_traps import Clock, FakeTransport, link_down

LINK_DOWN = T.NOTIFY["linkDown"]
SENDER = bytes.fromhex("80001f8880aabbccddeeff0011")  # a device's engine, authoritative for its traps
PAIRS = [("MD5", "DES"), ("SHA", "AES"), ("SHA256", "AES256"), ("SHA512", "AES256C"), ("SHA224", "AES192")]
SOURCE = ("10.0.0.1", 40000)


def user(auth="SHA256", priv="AES256", name=b"ops", auth_password=b"auth-pass-1", priv_password=b"priv-pass-1"):
    return usm.User(name, auth, auth_password if auth else b"", priv, priv_password if priv else b"")


def pdu(inform=False, request_id=7, idx=3) -> bytes:
    """A linkDown SNMPv2-Trap or InformRequest PDU, encoded by pysnmp."""
    p = (v2c.InformRequestPDU if inform else v2c.SNMPv2TrapPDU)()
    v2c.apiPDU.set_defaults(p)
    v2c.apiPDU.set_request_id(p, request_id)
    v2c.apiPDU.set_varbinds(p, [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.TimeTicks(12345)),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), v2c.ObjectIdentifier(LINK_DOWN)),
        (T.OID["ifIndex"] + (idx,), v2c.Integer(idx)),
        (T.OID["ifAdminStatus"] + (idx,), v2c.Integer(1)),
        (T.OID["ifOperStatus"] + (idx,), v2c.Integer(2)),
    ])
    return pyasn1_encoder.encode(p)


def trap(u, engine=SENDER, boots=3, time=1000, msg_id=11, request_id=7, keys_user=None, salt=99) -> bytes:
    """A v3 trap from `engine` (the sender, authoritative), signed/encrypted with `keys_user`'s keys
    (default `u`'s: a wrong password there is a wrong key)."""
    k = keys_user or u
    keys = usm.localize(k, engine) if k.flags else None
    return usm.encode_message(msg_id, keys, engine, boots, time, pdu(request_id=request_id), user_name=u.name,
                              context_engine_id=engine, salt=salt, reportable=False)


def inform(u, engine, boots, time, msg_id=21, request_id=8, keys_user=None, salt=5) -> bytes:
    k = keys_user or u
    keys = usm.localize(k, engine) if k.flags and engine else None
    return usm.encode_message(msg_id, keys, engine, boots, time, pdu(inform=True, request_id=request_id),
                              user_name=u.name, context_engine_id=engine, context_name=b"site", salt=salt)


def listener(*users, **kw):
    mono = Clock()
    ln = TrapListener([], users=users or [user()], monotonic=mono, **kw)
    ln.connection_made(FakeTransport())
    return ln, mono


def opened(raw: bytes, keys):
    """(Message, pdu type, request-id, varbinds) of a v3 message the receiver sent, read with `keys`."""
    msg = usm.parse_message(raw)
    _, _, pdu_type, rid, _, _, vbs = usm.decode_scoped_pdu(usm.open_message(msg, raw, keys))
    return msg, pdu_type, rid, vbs


# -- traps ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth,priv", PAIRS + [("SHA", None)])
def test_a_v3_trap_decodes_as_its_v2c_twin_for_every_auth_priv_pair(auth, priv):
    u = user(auth, priv)
    ln, _ = listener(u)
    got = ln.receive(trap(u), SOURCE)
    assert isinstance(got, Notification), got
    twin = decode_notification(link_down())  # the same PDU in a v2c message
    assert (got.version, got.community, got.user, got.pdu_type) == (ber.V3, b"", b"ops", ber.TRAP_V2)
    assert got.security_level == ("authPriv" if priv else "authNoPriv") and got.version_label == "3"
    assert (got.trap_oid, got.uptime_ticks, got.varbinds, got.request_id) == (
        twin.trap_oid, twin.uptime_ticks, twin.varbinds, twin.request_id)
    assert got.v3.engine_id == SENDER and ln.queue.qsize() == 1 and ln.transport.sent == []


def test_a_noauth_trap_only_for_a_user_without_auth():
    open_user = usm.User(b"ops")
    ln, _ = listener(open_user)
    got = ln.receive(trap(open_user), SOURCE)
    assert isinstance(got, Notification) and got.security_level == "noAuthNoPriv"
    ln, _ = listener(user())
    got = ln.receive(trap(open_user), SOURCE)  # the configured user signs: an unsigned one is refused
    assert got.reason == "unsupported_security_level" and "noAuthNoPriv, configured authPriv" in got.detail
    assert ln.queue.empty() and ln.v3.stats["unsupportedSecLevels"] == 1


def test_one_user_name_with_two_credentials_takes_either_key():
    site_a, site_b = user(auth_password=b"site-a-auth"), user(auth_password=b"site-b-auth")
    ln, _ = listener(site_a, site_b)
    assert isinstance(ln.receive(trap(site_b), SOURCE), Notification)
    assert isinstance(ln.receive(trap(site_a, engine=SENDER[:-1] + b"\x99"), SOURCE), Notification)


@pytest.mark.parametrize("auth,priv", PAIRS)
def test_a_wrong_key_is_a_wrong_digest_and_nothing_queued(auth, priv):
    u = user(auth, priv)
    ln, _ = listener(u)
    got = ln.receive(trap(u, keys_user=user(auth, priv, auth_password=b"guessed-pass")), SOURCE)
    assert isinstance(got, TrapDropped) and got.reason == "wrong_digest", got
    assert "digest does not match" in got.detail and SENDER.hex() in got.detail
    assert ln.dropped_total["wrong_digest"] == 1 and ln.queue.empty()
    assert ln.transport.sent == []  # a trap is not reportable: no Report
    assert b"guessed" not in repr(ln.last_drops).encode() and b"auth-pass" not in repr(ln.last_drops).encode()


def test_a_wrong_privacy_key_is_a_decryption_error():
    u = user("SHA", "AES")
    ln, _ = listener(u)
    got = ln.receive(trap(u, keys_user=user("SHA", "AES", priv_password=b"other-priv")), SOURCE)
    assert got.reason == "decryption_error" and "wrong privacy key" in got.detail, got
    assert ln.v3.stats["decryptionErrors"] == 1


def test_an_unknown_user_is_dropped_and_says_who():
    ln, _ = listener(user())
    got = ln.receive(trap(user(name=b"mallory")), SOURCE)
    assert got.reason == "unknown_user" and "'mallory'" in got.detail and ln.queue.empty()
    assert decode_notification(trap(user())).reason == "unknown_user"  # a decoder given no users


def test_a_senders_clock_is_learnt_and_replays_outside_the_window_are_dropped():
    u = user("SHA", "AES")
    ln, mono = listener(u)
    first = trap(u, boots=3, time=1000)
    assert isinstance(ln.receive(first, SOURCE), Notification)  # learns boots 3, time 1000
    assert isinstance(ln.receive(trap(u, boots=3, time=2000, msg_id=12), SOURCE), Notification)
    replay = ln.receive(first, SOURCE)  # 1000 < 2000 - 150
    assert replay.reason == "not_in_time_window" and "replay" in replay.detail, replay
    assert isinstance(ln.receive(trap(u, boots=3, time=1900, msg_id=13), SOURCE), Notification)  # within 150 s
    assert ln.receive(trap(u, boots=2, time=5000, msg_id=14), SOURCE).reason == "not_in_time_window"
    mono.t += 1000  # the sender's clock runs on: its 2000 is now our estimate 3000
    assert ln.receive(trap(u, boots=3, time=2100, msg_id=15), SOURCE).reason == "not_in_time_window"
    assert isinstance(ln.receive(trap(u, boots=4, time=1, msg_id=16), SOURCE), Notification)  # it rebooted
    assert ln.dropped_total["not_in_time_window"] == 3 and ln.queue.qsize() == 4
    other = ln.receive(trap(u, engine=SENDER[:-1] + b"\x01", boots=1, time=5), SOURCE)
    assert isinstance(other, Notification)  # another engine has its own clock


def test_the_sender_engines_tracked_are_bounded():
    u = user("SHA", None)
    rx = UsmReceiver([u], max_engines=3, monotonic=Clock())
    for i in range(10):
        assert isinstance(rx.decode(trap(u, engine=SENDER + bytes((i,)))), Notification)
    assert rx.engines_tracked() == 3


def test_every_truncation_of_a_v3_trap_is_a_counted_drop_never_an_exception():
    u = user("SHA512", "AES256C")
    good = trap(u)
    ln, _ = listener(u, rate=1e9, burst=1e9)
    for n in range(len(good)):
        got = ln.receive(good[:n], SOURCE)
        assert isinstance(got, TrapDropped) and got.reason == "malformed" and got.detail, (n, got)
    assert ln.dropped_total["malformed"] == len(good)
    assert ln.receive(good + b"\x00", SOURCE).reason == "malformed"
    rnd = random.Random(3)
    for _ in range(2000):  # bytes flipped at random: a notification or a reasoned drop, nothing else
        b = bytearray(good)
        for _ in range(rnd.randint(1, 3)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        got = ln.receive(bytes(b), SOURCE)
        assert isinstance(got, Notification) or got.reason in DROP_REASONS
    assert "at byte" in ln.receive(good[:40], SOURCE).detail


def test_malformed_inside_the_decrypted_scoped_pdu_says_so():
    u = user("SHA", "AES")
    keys = usm.localize(u, SENDER)
    bad_pdu = b"\xa7\x03\x02\x01\x07"  # a PDU cut after its request-id
    raw = usm.encode_message(1, keys, SENDER, 1, 1, bad_pdu, context_engine_id=SENDER, salt=1, reportable=False)
    got = decode_notification(raw, UsmReceiver([u]))
    assert got.reason == "malformed" and got.detail.startswith("SNMPv3 ScopedPDU (decrypted): "), got


# -- informs: the receiver is authoritative ----------------------------------------------------------------

def test_discovery_then_time_sync_then_an_inform_is_acknowledged_with_the_senders_keys():
    u = user("SHA256", "AES256")
    ln, mono = listener(u)
    ours = ln.v3.engine_id
    assert ours.startswith(ENGINE_ID_PREFIX) and len(ours) == 13
    mono.t += 42
    # 1. discovery: a Report, noAuthNoPriv, with our engine ID, boots and time
    got = ln.receive(ber.encode_v3_discovery(501, 601), SOURCE)
    assert got.reason == "engine_discovery" and len(ln.transport.sent) == 1
    msg, pdu_type, rid, vbs = opened(ln.transport.sent[-1][0], None)
    assert (pdu_type, usm.report_name(vbs), rid, msg.msg_id) == (ber.REPORT, "unknownEngineIDs", 601, 501)
    assert (msg.engine_id, msg.boots, msg.time, msg.flags) == (ours, 1, 42, 0)
    assert vbs[0].type == "Counter32" and vbs[0].value == 1
    # 2. the sender does not know our clock yet: a signed (authNoPriv) notInTimeWindows Report with it
    got = ln.receive(inform(u, ours, 0, 0), SOURCE)
    assert got.reason == "not_in_time_window" and ln.queue.empty()
    raw = ln.transport.sent[-1][0]
    auth_only = usm.localize(usm.User(u.name, u.auth, u.auth_password), ours)
    msg, pdu_type, _, vbs = opened(raw, auth_only)
    assert usm.report_name(vbs) == "notInTimeWindows" and msg.flags == usm.FLAG_AUTH
    assert (msg.boots, msg.time, msg.msg_id) == (1, 42, 21)
    # 3. in time: queued and acknowledged, at authPriv, same msgID, request-id and varbinds
    sent = inform(u, ours, msg.boots, msg.time, msg_id=22)
    got = ln.receive(sent, SOURCE)
    assert isinstance(got, Notification) and got.is_inform and ln.queue.qsize() == 1
    assert ln.informs_acknowledged_total == 1
    raw, addr = ln.transport.sent[-1]
    msg, pdu_type, rid, vbs = opened(raw, usm.localize(u, ours))
    assert addr == SOURCE and (pdu_type, rid, msg.msg_id) == (ber.RESPONSE, 8, 22)
    assert msg.flags == usm.FLAG_AUTH | usm.FLAG_PRIV and msg.engine_id == ours
    assert vbs == opened(sent, usm.localize(u, ours))[3] and len(vbs) == 5
    assert usm.decode_scoped_pdu(usm.open_message(msg, raw, usm.localize(u, ours)))[1] == b"site"
    # 4. a retransmission (new msgID, same request-id): acknowledged again, queued once
    assert isinstance(ln.receive(inform(u, ours, 1, 42, msg_id=23), SOURCE), Notification)
    assert ln.queue.qsize() == 1 and ln.informs_duplicate_total == 1 and ln.informs_acknowledged_total == 2
    assert opened(ln.transport.sent[-1][0], usm.localize(u, ours))[0].msg_id == 23
    assert ln.reports_sent_total == 2


def test_v3_inform_response_needs_its_receiver():
    u = user("MD5", "DES")
    rx = UsmReceiver([u])
    note = rx.decode(inform(u, rx.engine_id, 1, 0))
    assert isinstance(note, Notification), note
    with pytest.raises(ValueError, match="UsmReceiver"):
        inform_response(note)
    msg, pdu_type, _, _ = opened(inform_response(note, rx), usm.localize(u, rx.engine_id))
    assert pdu_type == ber.RESPONSE and msg.msg_id == 21


@pytest.mark.parametrize("auth,priv", PAIRS)
def test_a_wrong_key_inform_gets_a_wrong_digests_report_and_no_response(auth, priv):
    u = user(auth, priv)
    ln, _ = listener(u)
    got = ln.receive(inform(u, ln.v3.engine_id, 1, 0, keys_user=user(auth, priv, auth_password=b"guessed-pw")),
                     SOURCE)
    assert got.reason == "wrong_digest" and ln.queue.empty() and ln.informs_acknowledged_total == 0
    msg, pdu_type, _, vbs = opened(ln.transport.sent[-1][0], None)
    assert (pdu_type, usm.report_name(vbs), msg.flags) == (ber.REPORT, "wrongDigests", 0)


def test_unknown_user_and_foreign_engine_informs_get_their_reports():
    ln, _ = listener(user())
    got = ln.receive(inform(user(name=b"eve"), ln.v3.engine_id, 1, 0), SOURCE)
    assert got.reason == "unknown_user"
    assert usm.report_name(opened(ln.transport.sent[-1][0], None)[3]) == "unknownUserNames"
    got = ln.receive(inform(user(), SENDER, 1, 0), SOURCE)  # reportable, for an engine that is not ours
    assert got.reason == "unknown_engine_id" and ln.v3.engine_id.hex() in got.detail
    msg, _, _, vbs = opened(ln.transport.sent[-1][0], None)
    assert usm.report_name(vbs) == "unknownEngineIDs" and msg.engine_id == ln.v3.engine_id
    assert ln.v3.stats == {"unsupportedSecLevels": 0, "notInTimeWindows": 0, "unknownUserNames": 1,
                           "unknownEngineIDs": 1, "wrongDigests": 0, "decryptionErrors": 0}


def test_an_inform_older_than_the_window_is_refused_after_our_clock_moves():
    u = user("SHA", "AES")
    ln, mono = listener(u)
    assert isinstance(ln.receive(inform(u, ln.v3.engine_id, 1, 0), SOURCE), Notification)
    mono.t += 151
    got = ln.receive(inform(u, ln.v3.engine_id, 1, 0, request_id=9), SOURCE)
    assert got.reason == "not_in_time_window" and "ours are 1, 151" in got.detail


# -- the engine state and the users from the config --------------------------------------------------

def test_the_engine_id_is_kept_in_the_state_dir_and_boots_counts_starts(tmp_path):
    from probe.subsystems.snmp_traps import ENGINE_FILE, local_engine
    cfg = load_text(f"state_dir: {tmp_path}\n")
    first, boots1 = local_engine(cfg)
    again, boots2 = local_engine(cfg)
    assert first == again and first.startswith(ENGINE_ID_PREFIX) and (boots1, boots2) == (1, 2)
    assert json.loads((tmp_path / ENGINE_FILE).read_text()) == {"engine_id": first.hex(), "boots": 2}
    set_id = load_text(f"state_dir: {tmp_path}\nsnmp:\n  traps: {{engine_id: '8000000005010203040506'}}\n")
    assert local_engine(set_id) == (bytes.fromhex("8000000005010203040506"), 3)
    (tmp_path / ENGINE_FILE).write_text("{not json")
    fresh, boots = local_engine(cfg)
    assert fresh != first and boots == 1
    no_state = load_text("snmp: {}\n")
    assert no_state.state_dir is None and local_engine(no_state)[1] == 1
    assert local_engine(no_state)[0] != local_engine(no_state)[0]  # per process: a new one each time


def test_a_bad_engine_id_in_the_config_says_what_and_where():
    with pytest.raises(ConfigError) as err:
        load_text("snmp:\n  traps: {engine_id: '80zz'}\n", file="t.yml")
    assert "snmp.traps.engine_id" in str(err.value) and "not hex digits" in str(err.value)
    with pytest.raises(ConfigError, match="engine ID of 2 octets"):
        load_text("snmp:\n  traps: {engine_id: '8000'}\n", file="t.yml")


V3_CREDENTIALS = """snmp:
  credentials:
    - {{name: v3, version: "3", username: {name}, auth_protocol: SHA256, auth_key: auth-pass-1,
       priv_protocol: AES256, priv_key: priv-pass-1}}
  traps: {{listen_address: '127.0.0.1:1162'}}
"""


def test_the_subsystem_takes_v3_users_from_the_credentials_and_reload_takes_new_ones():
    from probe.subsystems.base import Context
    from probe.subsystems.snmp_traps import SnmpTrapsSubsystem
    sub = SnmpTrapsSubsystem(load_text(V3_CREDENTIALS.format(name="ops")), Context(store=None))
    ln = sub.listener
    ln.connection_made(FakeTransport())
    assert isinstance(ln.receive(trap(user()), SOURCE), Notification)
    asyncio.run(sub.reload(load_text(V3_CREDENTIALS.format(name="newops"))))
    assert ln.receive(trap(user(), msg_id=12), SOURCE).reason == "unknown_user"
    assert isinstance(ln.receive(trap(user(name=b"newops")), SOURCE), Notification)
    assert sub.describe()["snmpv3_engine_id"] == ln.v3.engine_id.hex()
