"""SNMPv3 messages and the User-based Security Model (RFC 3412 6, RFC 3414, RFC 3826, RFC 7860) on our
BER codec (ber.py), with the `cryptography` package for AES and DES.

    keys = localize(user, engine_id)                              # once per (user, agent engine)
    raw = encode_message(msg_id, keys, engine_id, boots, time, ber.encode_pdu(ber.GETBULK, ...),
                         context_engine_id=engine_id, salt=salt)
    msg = parse_message(answer)                                   # Message: header and USM fields
    scoped = open_message(msg, answer, keys)                      # checks the HMAC, decrypts
    context_engine_id, context_name, pdu_type, rid, status, index, varbinds = decode_scoped_pdu(scoped)

Why our own: pysnmp's pyasn1 codec builds an object per tag, so a v3 walk ran at a seventh of
snmpbulkwalk's rate; the USM work per message is one HMAC and one AES pass, both in C (hashlib,
OpenSSL through `cryptography`). pysnmp stays as the reference the tests hold this module to.

Keys (RFC 3414 A.2, RFC 7860 for SHA-2): a password is stretched to 1 MiB and hashed (Ku, cached per
password and hash: it costs milliseconds), then localized to the authoritative engine,
Kul = H(Ku | engineID | Ku). The privacy key is localized with the auth protocol's hash. AES-192/256
need more key than SHA-1 or MD5 give: the Blumenthal extension (draft-blumenthal-aes-usm-04 3.1.2.1,
Net-SNMP's AES-192/AES-256) appends H(key so far) until long enough; the Reeder extension (Cisco;
Net-SNMP's AES-192-C/AES-256-C) appends localize(stretch(key so far)).

Privacy: AES in CFB-128 (RFC 3826 3.1), IV = boots | time | 64-bit salt, the salt sent as
msgPrivacyParameters; DES in CBC (RFC 3414 8.1), key = Kul[:8], IV = Kul[8:16] xor salt (boots |
32-bit counter), the plaintext padded to 8 bytes.

Every length is bounds-checked by ber.py: a malformed or hostile datagram raises `BerError` saying
what and at which byte; a wrong digest or an undecryptable body raises `UsmError` with the RFC 3414
report it would count under.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe.sources.snmp import ber
from probe.sources.snmp.ber import BerError, _header, _int, _tlv, encode_int
from probe.sources.snmp.client import Varbind

try:  # cryptography >= 43 moved DES and CFB to its "decrepit" package: still what SNMPv3 speaks
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _DES
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
except ImportError:  # pragma: no cover - older cryptography
    _DES, _CFB = algorithms.TripleDES, modes.CFB

# msgFlags (RFC 3412 6.4)
FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
SECURITY_MODEL_USM = 3
MAX_MESSAGE_SIZE = 65507
MAX_ENGINE_ID = 32        # RFC 3411 SnmpEngineID: 5..32 octets (we accept 1..32: some agents are short)
MAX_USER_NAME = 32
TIME_WINDOW = 150         # seconds (RFC 3414 2.2.3)
MAX_BOOTS = 2**31 - 1

# auth protocol -> (hashlib name, length of msgAuthenticationParameters)
AUTH = {
    "MD5": ("md5", 12), "SHA": ("sha1", 12),                                # RFC 3414: HMAC-MD5-96, HMAC-SHA-96
    "SHA224": ("sha224", 16), "SHA256": ("sha256", 24),                     # RFC 7860
    "SHA384": ("sha384", 32), "SHA512": ("sha512", 48),
}
# priv protocol -> (cipher, key bytes, key extension)
PRIV = {
    "DES": ("des", 16, None),   # 8 bytes of key and 8 of pre-IV
    "AES": ("aes", 16, None), "AES128": ("aes", 16, None),
    "AES192": ("aes", 24, "blumenthal"), "AES256": ("aes", 32, "blumenthal"),
    "AES192C": ("aes", 24, "reeder"), "AES256C": ("aes", 32, "reeder"),
}

_STRETCH = 1 << 20  # RFC 3414 A.2.1: the password repeated to one MiB


LEVELS = {0: "noAuthNoPriv", FLAG_AUTH: "authNoPriv", FLAG_AUTH | FLAG_PRIV: "authPriv", FLAG_PRIV: "privNoAuth"}


class UsmError(Exception):
    """A v3 message that fails the security checks. `report` is the usmStats counter it falls under
    (the name after usmStats: "wrongDigests", "decryptionErrors", "notInTimeWindows", ...)."""

    def __init__(self, report: str, message: str):
        super().__init__(message)
        self.report = report


# -- keys -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def stretch(password: bytes, hash_name: str) -> bytes:
    """Ku: the hash of one MiB of the password repeated (RFC 3414 A.2.1, the same for SHA-2)."""
    if not password:
        raise ValueError("a v3 password must not be empty")
    reps = _STRETCH // len(password) + 1
    return hashlib.new(hash_name, (password * reps)[:_STRETCH]).digest()


def localize_key(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku | engineID | Ku) (RFC 3414 A.2.2)."""
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def _priv_key(password: bytes, engine_id: bytes, hash_name: str, size: int, extension: str | None) -> bytes:
    key = localize_key(stretch(password, hash_name), engine_id, hash_name)
    while len(key) < size:
        if extension == "blumenthal":
            key += hashlib.new(hash_name, key).digest()
        elif extension == "reeder":
            key += localize_key(stretch(key, hash_name), engine_id, hash_name)
        else:  # DES/AES-128 need at most 16 bytes: every hash gives that
            raise ValueError(f"{hash_name} gives {len(key)} bytes of key, {size} needed")
    return key[:size]


@dataclass(frozen=True)
class User:
    """A v3 user as configured: protocol names as in SnmpCredential (AUTH/PRIV keys), passwords."""

    name: bytes
    auth: str | None = None
    auth_password: bytes = b""
    priv: str | None = None
    priv_password: bytes = b""

    def __post_init__(self):
        if self.auth is not None and self.auth not in AUTH:
            raise ValueError(f"unknown v3 auth protocol {self.auth!r} (one of {', '.join(AUTH)})")
        if self.priv is not None and self.priv not in PRIV:
            raise ValueError(f"unknown v3 privacy protocol {self.priv!r} (one of {', '.join(PRIV)})")
        if self.priv is not None and self.auth is None:
            raise ValueError("v3 privacy needs authentication too")

    @classmethod
    def of(cls, credential) -> "User":
        """The user of a version 3 SnmpCredential (probe.config.snmp)."""
        c = credential
        return cls(c.username.encode(), c.auth_protocol, c.auth_key.reveal().encode() if c.auth_key else b"",
                   c.priv_protocol, c.priv_key.reveal().encode() if c.priv_key else b"")

    def __repr__(self) -> str:  # never the passwords
        return f"User({self.name!r}, auth={self.auth}, priv={self.priv})"

    @property
    def flags(self) -> int:
        return (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)


class Keys:
    """A user's keys localized to one authoritative engine: signs, checks, encrypts, decrypts."""

    __slots__ = ("user", "engine_id", "flags", "_hash", "_mac_len", "_auth_key", "_cipher", "_priv_key",
                 "_des_iv")

    def __init__(self, user: User, engine_id: bytes):
        self.user = user
        self.engine_id = engine_id
        self.flags = user.flags
        self._hash = self._auth_key = self._cipher = self._priv_key = self._des_iv = None
        self._mac_len = 0
        if user.auth:
            self._hash, self._mac_len = AUTH[user.auth]
            self._auth_key = localize_key(stretch(user.auth_password, self._hash), engine_id, self._hash)
        if user.priv:
            cipher, size, ext = PRIV[user.priv]
            key = _priv_key(user.priv_password, engine_id, self._hash, size, ext)
            self._cipher = cipher
            if cipher == "des":
                # Single DES is triple DES with the same key three times (what `cryptography` still offers).
                self._priv_key, self._des_iv = key[:8] * 3, key[8:16]
            else:
                self._priv_key = key

    @property
    def mac_len(self) -> int:
        return self._mac_len

    def mac(self, message: bytes) -> bytes:
        return hmac.digest(self._auth_key, message, self._hash)[:self._mac_len]

    def encrypt(self, plaintext: bytes, boots: int, time: int, salt: int) -> tuple[bytes, bytes]:
        """(ciphertext, msgPrivacyParameters). `salt` is a fresh integer per message."""
        if self._cipher == "aes":
            priv = (salt & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
            iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + priv
            enc = Cipher(algorithms.AES(self._priv_key), _CFB(iv)).encryptor()
            return enc.update(plaintext) + enc.finalize(), priv
        priv = boots.to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")
        iv = bytes(a ^ b for a, b in zip(self._des_iv, priv))
        pad = -len(plaintext) % 8
        enc = Cipher(_DES(self._priv_key), modes.CBC(iv)).encryptor()
        return enc.update(plaintext + b"\0" * pad) + enc.finalize(), priv

    def decrypt(self, ciphertext: bytes, priv: bytes, boots: int, time: int) -> bytes:
        if len(priv) != 8:
            raise UsmError("decryptionErrors", f"msgPrivacyParameters of {len(priv)} bytes, 8 expected")
        if self._cipher == "aes":
            iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + priv
            dec = Cipher(algorithms.AES(self._priv_key), _CFB(iv)).decryptor()
            return dec.update(ciphertext) + dec.finalize()
        if len(ciphertext) % 8:
            raise UsmError("decryptionErrors", f"DES ciphertext of {len(ciphertext)} bytes, not a multiple of 8")
        iv = bytes(a ^ b for a, b in zip(self._des_iv, priv))
        dec = Cipher(_DES(self._priv_key), modes.CBC(iv)).decryptor()
        return dec.update(ciphertext) + dec.finalize()


_KEYS_CACHE_MAX = 4096


@functools.lru_cache(maxsize=_KEYS_CACHE_MAX)
def localize(user: User, engine_id: bytes) -> Keys:
    """The user's keys for this authoritative engine (cached: bounded, least recently used first out)."""
    return Keys(user, engine_id)


# -- messages ---------------------------------------------------------------------------------------

def encode_message(msg_id: int, keys: Keys | None, engine_id: bytes, boots: int, time: int, pdu: bytes, *,
                   user_name: bytes = b"", context_engine_id: bytes = b"", context_name: bytes = b"",
                   salt: int = 0, reportable: bool = True, flags: int | None = None) -> bytes:
    """One v3 message carrying `pdu` (a PDU TLV from ber.encode_pdu) at the user's security level:
    signed when the user has auth, encrypted when it has priv. `keys` None is noAuthNoPriv (discovery,
    or a user with neither)."""
    level = keys.flags if keys is not None else 0
    if flags is None:
        flags = level | (FLAG_REPORTABLE if reportable else 0)
    if keys is not None:
        user_name = keys.user.name
    scoped = _tlv(0x30, _tlv(0x04, context_engine_id) + _tlv(0x04, context_name) + pdu)
    if level & FLAG_PRIV:
        encrypted, priv = keys.encrypt(scoped, boots, time, salt)
        data = _tlv(0x04, encrypted)
    else:
        data, priv = scoped, b""
    mac_len = keys.mac_len if level & FLAG_AUTH else 0
    priv_tlv = _tlv(0x04, priv)
    usm = _tlv(0x30, _tlv(0x04, engine_id) + encode_int(boots) + encode_int(time) + _tlv(0x04, user_name)
               + _tlv(0x04, b"\0" * mac_len) + priv_tlv)
    header = _tlv(0x30, encode_int(msg_id) + encode_int(MAX_MESSAGE_SIZE) + _tlv(0x04, bytes((flags,)))
                  + encode_int(SECURITY_MODEL_USM))
    whole = _tlv(0x30, encode_int(ber.V3) + header + _tlv(0x04, usm) + data)
    if not mac_len:
        return whole
    # The auth parameters are the last bytes of the USM parameters but for the privacy parameters.
    at = len(whole) - len(data) - len(priv_tlv) - mac_len
    return whole[:at] + keys.mac(whole) + whole[at + mac_len:]


@dataclass(frozen=True, slots=True)
class Message:
    """The header and USM parameters of a v3 message; `data` is the ScopedPDU, or its ciphertext when
    `flags & FLAG_PRIV`."""

    msg_id: int
    max_size: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user_name: bytes
    auth_params: bytes
    auth_at: int       # where auth_params start in the datagram (zeroed to check the HMAC)
    priv_params: bytes
    data: bytes

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & FLAG_AUTH)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_PRIV)

    @property
    def reportable(self) -> bool:
        return bool(self.flags & FLAG_REPORTABLE)


def parse_message(raw: bytes) -> Message:
    """Header and USM parameters of a v3 message, without checking digest or decrypting. BerError on
    anything malformed (a version other than 3, another security model, fields out of range)."""
    end = len(raw)
    tag, s, e = _header(raw, 0, end)
    if tag != 0x30:
        raise BerError(f"not an SNMP message (tag 0x{tag:02x} at byte 0)")
    if e != end:
        raise BerError(f"{end - e} bytes after the message (byte {e})")
    version, s = _int(raw, s, e)
    if version != ber.V3:
        raise BerError(f"SNMP version field {version}, not 3 (SNMPv3)")
    tag, hs, he = _header(raw, s, e)
    if tag != 0x30:
        raise BerError(f"msgGlobalData at byte {s} is not a SEQUENCE (tag 0x{tag:02x})")
    msg_id, p = _int(raw, hs, he)
    max_size, p = _int(raw, p, he)
    tag, fs, fe = _header(raw, p, he)
    if tag != 0x04 or fe - fs != 1:
        raise BerError(f"msgFlags at byte {p} is not a one-byte OCTET STRING")
    flags = raw[fs]
    model, p = _int(raw, fe, he)
    if p != he:
        raise BerError(f"{he - p} bytes after msgSecurityModel (byte {p})")
    if not 0 <= msg_id <= MAX_BOOTS or not 484 <= max_size <= MAX_BOOTS:
        raise BerError(f"msgID {msg_id} or msgMaxSize {max_size} out of range (RFC 3412 6)")
    if model != SECURITY_MODEL_USM:
        raise BerError(f"msgSecurityModel {model} at byte {fs + 1}: only USM (3) is spoken")
    if flags & FLAG_PRIV and not flags & FLAG_AUTH:
        raise BerError(f"msgFlags 0x{flags:02x}: privacy without authentication (RFC 3412 7.2.5)")
    tag, os_, oe = _header(raw, he, e)
    if tag != 0x04:
        raise BerError(f"msgSecurityParameters at byte {he} is not an OCTET STRING (tag 0x{tag:02x})")
    tag, us, ue = _header(raw, os_, oe)
    if tag != 0x30 or ue != oe:
        raise BerError(f"UsmSecurityParameters at byte {os_} is not one SEQUENCE")
    engine_id, p = _octets(raw, us, ue, "msgAuthoritativeEngineID", MAX_ENGINE_ID)
    boots, p = _int(raw, p, ue)
    time, p = _int(raw, p, ue)
    if not 0 <= boots <= MAX_BOOTS or not 0 <= time <= MAX_BOOTS:
        raise BerError(f"engine boots {boots} or time {time} out of range 0..2^31-1")
    user_name, p = _octets(raw, p, ue, "msgUserName", MAX_USER_NAME)
    tag, as_, ae = _header(raw, p, ue)
    if tag != 0x04:
        raise BerError(f"msgAuthenticationParameters at byte {p} is not an OCTET STRING")
    priv, p = _octets(raw, ae, ue, "msgPrivacyParameters", 64)
    if p != ue:
        raise BerError(f"{ue - p} bytes after msgPrivacyParameters (byte {p})")
    if flags & FLAG_PRIV:
        tag, ds, de = _header(raw, oe, e)
        if tag != 0x04:
            raise BerError(f"encrypted PDU at byte {oe} is not an OCTET STRING (tag 0x{tag:02x})")
        data = raw[ds:de]
    else:
        tag, ds, de = _header(raw, oe, e)
        if tag != 0x30:
            raise BerError(f"ScopedPDU at byte {oe} is not a SEQUENCE (tag 0x{tag:02x})")
        data = raw[oe:de]
    if de != e:
        raise BerError(f"{e - de} bytes after the PDU (byte {de})")
    return Message(msg_id, max_size, flags, engine_id, boots, time, user_name, raw[as_:ae], as_, priv, data)


def _octets(raw: bytes, pos: int, end: int, what: str, limit: int) -> tuple[bytes, int]:
    tag, s, e = _header(raw, pos, end)
    if tag != 0x04:
        raise BerError(f"{what} at byte {pos} is not an OCTET STRING (tag 0x{tag:02x})")
    if e - s > limit:
        raise BerError(f"{what} at byte {pos} is {e - s} bytes long, more than {limit}")
    return raw[s:e], e


def check_digest(msg: Message, raw: bytes, keys: Keys) -> None:
    """RFC 3414 3.2.6: the HMAC over the whole datagram with the auth parameters zeroed."""
    n = keys.mac_len
    if len(msg.auth_params) != n:
        raise UsmError("wrongDigests", f"msgAuthenticationParameters of {len(msg.auth_params)} bytes, "
                                       f"{n} expected for {keys.user.auth}")
    at = msg.auth_at
    zeroed = raw[:at] + b"\0" * n + raw[at + n:]
    if not hmac.compare_digest(keys.mac(zeroed), msg.auth_params):
        raise UsmError("wrongDigests", f"digest does not match user {keys.user.name!r}'s {keys.user.auth} key")


def open_message(msg: Message, raw: bytes, keys: Keys | None) -> bytes:
    """The ScopedPDU of a message at its user's security level: the digest checked, the body
    decrypted. A message below or above the level of `keys` (None: noAuthNoPriv) is refused, so a
    flipped flag cannot strip the digest off a message."""
    level = msg.flags & (FLAG_AUTH | FLAG_PRIV)
    want = keys.flags if keys is not None else 0
    if level != want:
        raise UsmError("unsupportedSecLevels", f"message at level {LEVELS[level]} for a user at {LEVELS[want]}")
    if msg.authenticated:
        check_digest(msg, raw, keys)
    return plaintext(msg, keys)


def plaintext(msg: Message, keys: Keys | None) -> bytes:
    """The ScopedPDU of a message whose digest was checked (open_message without the check)."""
    if not msg.encrypted:
        return msg.data
    if keys is None or not keys.flags & FLAG_PRIV:
        raise UsmError("unsupportedSecLevels", "encrypted message for a user without a privacy key")
    plain = keys.decrypt(msg.data, msg.priv_params, msg.boots, msg.time)
    try:  # DES pads the ScopedPDU to 8 bytes: what follows its TLV is padding
        tag, s, e = _header(plain, 0, len(plain))
    except BerError as exc:
        raise UsmError("decryptionErrors", f"decrypted PDU is not BER ({exc}): wrong privacy key?") from None
    if tag != 0x30:
        raise UsmError("decryptionErrors", "decrypted PDU is not a ScopedPDU: wrong privacy key?")
    return plain[:e]


def open_scoped(scoped: bytes) -> tuple[bytes, bytes, int, int, int]:
    """(contextEngineID, contextName, PDU tag, start and end of the PDU's contents) of a ScopedPDU,
    without decoding the PDU: what the manager needs to see a Report, the receiver a notification."""
    end = len(scoped)
    tag, s, e = _header(scoped, 0, end)
    if tag != 0x30:
        raise BerError(f"ScopedPDU is not a SEQUENCE (tag 0x{tag:02x})")
    ctx_engine, p = _octets(scoped, s, e, "contextEngineID", MAX_ENGINE_ID)
    ctx_name, p = _octets(scoped, p, e, "contextName", 255)
    pdu_tag, ps, pe = _header(scoped, p, e)
    if pe != e:
        raise BerError(f"{e - pe} bytes after the PDU in the ScopedPDU (byte {pe})")
    return ctx_engine, ctx_name, pdu_tag, ps, pe


def decode_scoped_pdu(scoped: bytes) -> tuple[bytes, bytes, int, int, int, int, list[Varbind]]:
    """(contextEngineID, contextName, PDU type, request-id, error status, error index, varbinds) of a
    ScopedPDU carrying a v2-shaped PDU (every PDU a v3 message may carry)."""
    ctx_engine, ctx_name, pdu_type, ps, pe = open_scoped(scoped)
    if pdu_type == ber.TRAP_V1:
        raise BerError("an SNMPv1 Trap-PDU inside an SNMPv3 message")
    rid, status, index, _, vs, ve = ber.decode_pdu_body(scoped, ps, pe)
    return ctx_engine, ctx_name, pdu_type, rid, status, index, ber.decode_varbinds(scoped, vs, ve)


def is_replay(boots: int, engine_time: int, msg_boots: int, msg_time: int) -> bool:
    """RFC 3414 3.2.7 b, the non-authoritative side: is a message stamped msg_boots/msg_time outside the
    window of an engine we know at boots/engine_time (older boots, or more than TIME_WINDOW behind)?"""
    return (msg_boots == MAX_BOOTS or msg_boots < boots
            or (msg_boots == boots and msg_time < engine_time - TIME_WINDOW))


def report_name(varbinds: Sequence[Varbind]) -> str | None:
    """The usmStats counter a Report PDU carries ("unknownEngineIDs", "wrongDigests", ...), or None."""
    for vb in varbinds:
        name = ber.USM_REPORTS.get(vb.oid)
        if name:
            return name
    return None
