"""usm.py, our SNMPv3 USM, against RFC 3414's test vectors and against pysnmp's USM modules (the
reference): the same localized keys, digests and ciphertexts for every auth and privacy protocol;
then whole messages: every security level round-trips, and a tampered, replayed, truncated or
wrongly keyed message is refused with the report it counts under, never an unexpected exception."""
from __future__ import annotations

import itertools
import random

import pytest

from probe.sources.snmp import ber, usm
from probe.sources.snmp.client import OCTETS, Varbind

pytest.importorskip("pysnmp")

from pyasn1.type import univ  # noqa: E402
from pysnmp.proto.secmod.rfc3414 import service  # noqa: E402,F401  (first: pysnmp's modules import in a cycle)
from pysnmp.proto.secmod.eso.priv import aes192, aes256  # noqa: E402
from pysnmp.proto.secmod.rfc3414 import localkey  # noqa: E402
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha  # noqa: E402
from pysnmp.proto.secmod.rfc3414.priv import des  # noqa: E402
from pysnmp.proto.secmod.rfc3826.priv import aes  # noqa: E402
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2  # noqa: E402

ENGINE = bytes.fromhex("80001f8880e9630000d61ff449")
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)

_SHA2 = hmacsha2.HmacSha2
REF_AUTH_ID = {"MD5": hmacmd5.HmacMd5.SERVICE_ID, "SHA": hmacsha.HmacSha.SERVICE_ID,
               "SHA224": _SHA2.SHA224_SERVICE_ID, "SHA256": _SHA2.SHA256_SERVICE_ID,
               "SHA384": _SHA2.SAH384_SERVICE_ID, "SHA512": _SHA2.SHA512_SERVICE_ID}
REF_AUTH = {"MD5": hmacmd5.HmacMd5(), "SHA": hmacsha.HmacSha(),
            **{name: _SHA2(REF_AUTH_ID[name]) for name in ("SHA224", "SHA256", "SHA384", "SHA512")}}
REF_PRIV = {"DES": des.Des(), "AES": aes.Aes(), "AES192": aes192.AesBlumenthal192(),
            "AES256": aes256.AesBlumenthal256(), "AES192C": aes192.Aes192(), "AES256C": aes256.Aes256()}
PAIRS = list(itertools.product(usm.AUTH, REF_PRIV))


def test_rfc3414_a3_password_to_key_vectors():
    engine = bytes.fromhex("000000000000000000000002")
    md5 = usm.localize_key(usm.stretch(b"maplesyrup", "md5"), engine, "md5")
    sha = usm.localize_key(usm.stretch(b"maplesyrup", "sha1"), engine, "sha1")
    assert md5.hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert sha.hex() == "6695febc9288e36282235fc7151f128497b38f3f"


def test_every_protocol_is_in_the_reference():
    assert set(REF_AUTH) == set(usm.AUTH)
    assert set(REF_PRIV) | {"AES128"} == set(usm.PRIV)


@pytest.mark.parametrize("auth", list(usm.AUTH))
def test_auth_key_and_digest_equal_pysnmps(auth):
    ref = REF_AUTH[auth]
    user = usm.User(b"u", auth, b"a password for " + auth.encode())
    keys = usm.Keys(user, ENGINE)
    ref_key = ref.localize_key(ref.hash_passphrase(user.auth_password), univ.OctetString(ENGINE))
    assert keys._auth_key == ref_key.asOctets()
    # pysnmp signs a message whose auth parameters are zero: the same digest lands in the same place.
    msg = usm.encode_message(7, keys, ENGINE, 3, 1000, ber.encode_pdu(ber.GET, 7, [SYS_NAME]))
    parsed = usm.parse_message(msg)
    zeroed = msg[:parsed.auth_at] + b"\0" * keys.mac_len + msg[parsed.auth_at + keys.mac_len:]
    assert bytes(ref.authenticate_outgoing_message(ref_key, zeroed)) == msg
    assert len(parsed.auth_params) == ref.digest_length


@pytest.mark.parametrize("auth,priv", PAIRS)
def test_priv_key_and_ciphertext_equal_pysnmps(auth, priv):
    ref = REF_PRIV[priv]
    auth_id = REF_AUTH_ID[auth]
    user = usm.User(b"u", auth, b"auth password", priv, b"priv password " + priv.encode())
    keys = usm.Keys(user, ENGINE)
    ref_key = ref.localize_key(auth_id, ref.hash_passphrase(auth_id, user.priv_password), univ.OctetString(ENGINE))
    ours = keys._priv_key[:8] + keys._des_iv if priv == "DES" else keys._priv_key
    assert ours == ref_key.asOctets()[:len(ours)]
    plain = bytes(range(256)) * 3 + b"odd"
    boots, time = 5, 123456
    # ours -> pysnmp
    ct, salt = keys.encrypt(plain, boots, time, salt=0x0123456789ABCDEF)
    back = ref.decrypt_data(ref_key, (boots, time, univ.OctetString(salt)), univ.OctetString(ct))
    assert bytes(back)[:len(plain)] == plain
    # pysnmp -> ours
    ct2, salt2 = ref.encrypt_data(ref_key, (boots, time, None), plain)
    assert keys.decrypt(bytes(ct2), bytes(salt2), boots, time)[:len(plain)] == plain


def _user(auth=None, priv=None, name=b"monitor"):
    return usm.User(name, auth, b"auth-secret-1" if auth else b"", priv, b"priv-secret-1" if priv else b"")


LEVELS = [(None, None), ("MD5", None), ("SHA", "DES"), ("SHA256", "AES"), ("SHA384", "AES192"),
          ("SHA512", "AES256C"), ("SHA224", "AES256")]


def _response(keys, *, boots=4, time=900, msg_id=42, value=b"h0.lab", engine=ENGINE):
    pdu_body = (ber.encode_int(msg_id) + ber.encode_int(0) + ber.encode_int(0)
                + ber._tlv(0x30, ber._tlv(0x30, ber.encode_oid(SYS_NAME) + ber._tlv(0x04, value))))
    return usm.encode_message(msg_id, keys, engine, boots, time, ber._tlv(ber.RESPONSE, pdu_body),
                              user_name=b"monitor", context_engine_id=engine, salt=99, reportable=False)


@pytest.mark.parametrize("auth,priv", LEVELS)
def test_every_security_level_round_trips(auth, priv):
    user = _user(auth, priv)
    keys = usm.localize(user, ENGINE) if user.flags else None
    raw = _response(keys)
    msg = usm.parse_message(raw)
    assert (msg.msg_id, msg.engine_id, msg.boots, msg.time, msg.user_name) == (42, ENGINE, 4, 900, b"monitor")
    assert msg.authenticated == bool(auth) and msg.encrypted == bool(priv) and not msg.reportable
    ctx, name, ptype, rid, status, index, vbs = usm.decode_scoped_pdu(usm.open_message(msg, raw, keys))
    assert (ctx, name, ptype, rid, status, index) == (ENGINE, b"", ber.RESPONSE, 42, 0, 0)
    assert vbs == [Varbind(SYS_NAME, OCTETS, b"h0.lab")]
    if priv:
        assert b"h0.lab" not in raw


@pytest.mark.parametrize("auth,priv", LEVELS[1:])
def test_a_flipped_bit_anywhere_is_refused(auth, priv):
    keys = usm.localize(_user(auth, priv), ENGINE)
    raw = _response(keys)
    refused = 0
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        try:
            msg = usm.parse_message(bytes(bad))
            usm.decode_scoped_pdu(usm.open_message(msg, bytes(bad), keys))
        except (ber.BerError, usm.UsmError):
            refused += 1
            continue
        pytest.fail(f"byte {i} flipped and the message was accepted")
    assert refused == len(raw)


def test_a_wrong_key_is_told_by_its_report():
    right = usm.localize(_user("SHA256", "AES256"), ENGINE)
    wrong_auth = usm.Keys(usm.User(b"monitor", "SHA256", b"not-the-secret", "AES256", b"priv-secret-1"), ENGINE)
    wrong_priv = usm.Keys(usm.User(b"monitor", "SHA256", b"auth-secret-1", "AES256", b"not-the-secret"), ENGINE)
    raw = _response(right)
    msg = usm.parse_message(raw)
    with pytest.raises(usm.UsmError) as exc:
        usm.open_message(msg, raw, wrong_auth)
    assert exc.value.report == "wrongDigests"
    # The digest holds (same auth key); a wrong privacy key decrypts to noise.
    with pytest.raises(usm.UsmError) as exc:
        usm.open_message(msg, raw, wrong_priv)
    assert exc.value.report == "decryptionErrors"


def test_keys_are_per_engine_and_the_cache_is_bounded():
    user = _user("SHA", "AES")
    a, b = usm.localize(user, ENGINE), usm.localize(user, ENGINE[:-1] + b"\x00")
    assert a._auth_key != b._auth_key and a._priv_key != b._priv_key
    raw = _response(a)
    with pytest.raises(usm.UsmError):
        usm.open_message(usm.parse_message(raw), raw, b)
    assert usm.localize.cache_info().maxsize == usm._KEYS_CACHE_MAX
    assert "secret" not in repr(user)


@pytest.mark.parametrize("auth,priv", LEVELS)
def test_every_truncation_and_random_garbage_is_a_clear_error(auth, priv):
    user = _user(auth, priv)
    keys = usm.localize(user, ENGINE) if user.flags else None
    raw = _response(keys)
    for n in range(len(raw)):
        with pytest.raises((ber.BerError, usm.UsmError)):
            msg = usm.parse_message(raw[:n])
            usm.decode_scoped_pdu(usm.open_message(msg, raw[:n], keys))
    rnd = random.Random(15)
    for _ in range(300):
        junk = bytearray(raw)
        for _ in range(rnd.randint(1, 6)):
            junk[rnd.randrange(len(junk))] = rnd.randrange(256)
        try:
            msg = usm.parse_message(bytes(junk))
            usm.decode_scoped_pdu(usm.open_message(msg, bytes(junk), keys))
        except (ber.BerError, usm.UsmError) as exc:
            assert str(exc)
