"""Capture files (pcap and pcapng) read as a stream of FrameBatch chunks, with bounded memory.

    for batch in read_batches(path):       # FrameBatch, at most `batch_frames` frames each
        ...
    # a truncated or corrupt file raises CaptureFileError *after* every frame before the fault was
    # yielded, so a caller that processes each batch as it comes has lost nothing.

pcap: both byte orders, microsecond and nanosecond timestamps, versions 2.0-2.4 as libpcap reads them
(a record whose timestamp fraction is a second or more is kept with its time as given and counted, as
tcpdump reads on), the FCS length in the link-type field stripped from each frame. pcapng: versions 1.0
and 1.2, SHB/IDB/EPB/SPB (and the obsolete Packet Block), several interfaces with their own timestamp
resolution/offset/FCS length, sections of either byte order, unknown blocks skipped.

Ethernet (LINKTYPE_ETHERNET = 1) frames pass through as they are; the other link types read are given a
synthesized Ethernet header so the same parser reads them: Linux cooked captures (`tcpdump -i any`:
SLL 113, SLL2 276; source MAC from the cooked header, destination broadcast, multicast or zero from the
packet type), raw IP (101, 228, 229), BSD loopback (NULL 0 in the writer's byte order, LOOP 108 in
network order), PPP (9, 50), Cisco HDLC (104), and 802.11 data frames (105, with radiotap 127) by their
DA, SA and LLC/SNAP ethertype. Frames that are not traffic (802.11 management, control, encrypted; PPP
control protocols) and frames of a pcapng interface of an unsupported link type are skipped and counted
in a ReaderStats; a pcap of an unsupported link type is a CaptureFileError naming it.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

import numpy as np

from probe.sources.frames import NO_VLAN, FrameBatch

__all__ = ["CaptureFileError", "ReaderStats", "read_batches", "LINKTYPE_ETHERNET"]

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_PPP_HDLC = 0, 1, 9, 50
LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 101, 228, 229
LINKTYPE_C_HDLC, LINKTYPE_IEEE802_11, LINKTYPE_LOOP = 104, 105, 108
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_IEEE802_11_RADIOTAP = 113, 276, 127
_ZERO_MAC = bytes(6)
_BCAST_MAC = b"\xff" * 6
_MCAST_MAC = b"\x01\x00\x5e\x00\x00\x01"
_IPV4, _IPV6 = b"\x08\x00", b"\x86\xdd"


class ReaderStats:
    """What a reader left out or read leniently, for the caller to report (replay prints it)."""

    def __init__(self):
        self.skipped: dict[str, int] = {}  # "<link type>: <why>" -> frames not yielded
        self.timestamps_out_of_range = 0   # pcap records whose fraction was >= one second, kept as given, and
        #                                    pcapng records whose time is beyond int64 ns, kept saturated
        self.warnings: list[str] = []      # one line per kind of thing left out, said once, for the caller to show

    def skip(self, reason: str, n: int = 1):
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def warn(self, message: str):
        self.warnings.append(message)


class _Skip(str):
    """A converter's answer for a frame it leaves out: the reason, counted in ReaderStats.skipped."""


def _eth_header(pkttype: int, src: bytes, proto: int, payload: bytes) -> bytes:
    dst = _BCAST_MAC if pkttype == 1 else _MCAST_MAC if pkttype == 2 else _ZERO_MAC
    if proto in (0x0001, 0x0004):  # Novell raw 802.3 / 802.2 LLC: an 802.3 length field instead
        proto = min(len(payload), 1500)
    return dst + src + proto.to_bytes(2, "big") + payload


# Each converter takes one captured frame of its link type and returns (Ethernet frame, change in the
# frame's wire length) or (_Skip(reason), 0) for a frame that is not traffic the parser reads.

def _sll(frame: bytes, missing: int = 0):
    if len(frame) < 16:
        return frame[:0], -2  # a runt: the parser counts it malformed
    pkttype, _hatype, halen = struct.unpack_from(">HHH", frame, 0)
    src = frame[6:12] if halen == 6 else _ZERO_MAC
    return _eth_header(pkttype, src, struct.unpack_from(">H", frame, 14)[0], frame[16:]), -2


def _sll2(frame: bytes, missing: int = 0):
    if len(frame) < 20:
        return frame[:0], -6
    proto = struct.unpack_from(">H", frame, 0)[0]
    pkttype, halen = frame[10], frame[11]
    src = frame[12:18] if halen == 6 else _ZERO_MAC
    return _eth_header(pkttype, src, proto, frame[20:]), -6


def _ip_ethertype(payload: bytes) -> bytes:
    return _IPV6 if payload and payload[0] >> 4 == 6 else _IPV4


def _raw_ip(frame: bytes, missing: int = 0):
    return _ZERO_MAC + _ZERO_MAC + _ip_ethertype(frame) + frame, 14


# BSD address families in the NULL/LOOP header: IPv6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS)
_BSD_AF = {2: _IPV4, 24: _IPV6, 28: _IPV6, 30: _IPV6}


def _af_frame(family: int, frame: bytes, name: str):
    ethertype = _BSD_AF.get(family)
    if ethertype is None:
        return _Skip(f"{name}: address family not IPv4/IPv6"), 0
    return _ZERO_MAC + _ZERO_MAC + ethertype + frame[4:], 10


def _null(frame: bytes, missing: int = 0):
    if len(frame) < 4:
        return frame[:0], 10
    family = struct.unpack_from("<I", frame, 0)[0]
    if family & 0xFFFF0000:  # written by a big-endian host (libpcap's test: a family fits in 16 bits)
        family = struct.unpack_from(">I", frame, 0)[0]
    return _af_frame(family, frame, "NULL/loopback (0)")


def _loop(frame: bytes, missing: int = 0):
    if len(frame) < 4:
        return frame[:0], 10
    return _af_frame(struct.unpack_from(">I", frame, 0)[0], frame, "OpenBSD loopback (108)")


# PPP protocol -> ethertype: IPv4, IPv6, MPLS unicast and multicast
_PPP_ETHERTYPE = {0x0021: _IPV4, 0x0057: _IPV6, 0x0281: b"\x88\x47", 0x0283: b"\x88\x48"}


def _ppp(frame: bytes, missing: int = 0):
    pos = 2 if frame[:2] == b"\xff\x03" else 0  # address and control may be left out (RFC 1661 ACFC)
    if len(frame) < pos + 1:
        return frame[:0], 14
    if frame[pos] & 1:  # protocol field compressed to one byte (PFC)
        proto, pos = frame[pos], pos + 1
    elif len(frame) >= pos + 2:
        proto, pos = (frame[pos] << 8) | frame[pos + 1], pos + 2
    else:
        return frame[:0], 14
    ethertype = _PPP_ETHERTYPE.get(proto)
    if ethertype is None:
        return _Skip("PPP (9/50): control or other protocol"), 0
    return _ZERO_MAC + _ZERO_MAC + ethertype + frame[pos:], 14 - pos


def _c_hdlc(frame: bytes, missing: int = 0):
    if len(frame) < 4:
        return frame[:0], 10
    if frame[2:4] == b"\x80\x35":  # SLARP: Cisco's keepalive, not traffic
        return _Skip("Cisco HDLC (104): SLARP keepalive"), 0
    dst = _BCAST_MAC if frame[0] == 0x8F else _ZERO_MAC
    return dst + _ZERO_MAC + frame[2:], 10


def _ieee80211(frame: bytes, missing: int = 0, fcs: int = 0):
    """An 802.11 data frame as Ethernet (DA, SA, the LLC/SNAP ethertype); other frames are skipped.

    `fcs` bytes end the frame on the wire; of them, those not cut off by the snap length (`missing`
    bytes were) are stripped, and the wire length loses all of them.
    """
    cut = max(0, fcs - missing)
    whole = len(frame)
    if cut:
        frame = frame[:-cut] if len(frame) >= cut else frame[:0]
    if len(frame) < 2:
        return frame[:0], -fcs
    fc0, fc1 = frame[0], frame[1]
    ftype, subtype = (fc0 >> 2) & 3, fc0 >> 4
    if ftype != 2:
        return _Skip("802.11: management or control frame"), 0
    if fc1 & 0x40:
        return _Skip("802.11: protected (encrypted) frame"), 0
    if subtype & 0x04:
        return _Skip("802.11: data frame without a payload (null function)"), 0
    four = fc1 & 3 == 3
    if len(frame) < (30 if four else 24):
        return frame[:0], -fcs  # a runt: the parser counts it malformed
    if struct.unpack_from("<H", frame, 22)[0] & 0x000F:
        return _Skip("802.11: fragment after the first"), 0
    to_ds, from_ds = fc1 & 1, fc1 & 2
    a1, a2, a3 = frame[4:10], frame[10:16], frame[16:22]
    hdr = 24
    if four:
        da, sa, hdr = a3, frame[24:30], 30
    elif to_ds:
        da, sa = a3, a2
    elif from_ds:
        da, sa = a1, a3
    else:
        da, sa = a1, a2
    if subtype & 0x08:  # QoS data: a QoS control field, and an HT control field when Order is set
        if len(frame) >= hdr + 1 and frame[hdr] & 0x80:
            return _Skip("802.11: A-MSDU aggregate"), 0
        hdr += 2 + (4 if fc1 & 0x80 else 0)
    body = frame[hdr:]
    if body[:3] == b"\xaa\xaa\x03" and body[3:6] in (b"\0\0\0", b"\0\0\xf8") and len(body) >= 8:
        out = da + sa + body[6:]
    else:  # plain 802.2 LLC: an 802.3 length field
        out = da + sa + min(len(body), 1500).to_bytes(2, "big") + body
    return out, len(out) - whole + cut - fcs


def _radiotap(frame: bytes, missing: int = 0):
    if len(frame) < 8:
        return frame[:0], 0
    rt_len = struct.unpack_from("<H", frame, 2)[0]
    if rt_len < 8 or rt_len > len(frame):
        return frame[:0], 0
    # the flags field (bit 1) follows the presence words and, if bit 0 is set, the 8-aligned TSFT
    pos = 4
    present = word = struct.unpack_from("<I", frame, 4)[0]
    while word & 0x80000000 and pos + 8 <= rt_len:
        pos += 4
        word = struct.unpack_from("<I", frame, pos)[0]
    pos += 4
    if present & 1:
        pos = ((pos + 7) & ~7) + 8
    flags = frame[pos] if present & 2 and pos < rt_len else 0
    if flags & 0x40:
        return _Skip("802.11 radiotap (127): failed FCS check"), 0
    out, grow = _ieee80211(frame[rt_len:], missing, 4 if flags & 0x10 else 0)
    return out, (0 if isinstance(out, _Skip) else grow - rt_len)


# link type -> frame converter (None: Ethernet as it is)
_CONVERT = {LINKTYPE_ETHERNET: None, LINKTYPE_LINUX_SLL: _sll, LINKTYPE_LINUX_SLL2: _sll2,
            LINKTYPE_RAW: _raw_ip, LINKTYPE_IPV4: _raw_ip, LINKTYPE_IPV6: _raw_ip,
            LINKTYPE_NULL: _null, LINKTYPE_LOOP: _loop, LINKTYPE_PPP: _ppp, LINKTYPE_PPP_HDLC: _ppp,
            LINKTYPE_C_HDLC: _c_hdlc, LINKTYPE_IEEE802_11: _ieee80211, LINKTYPE_IEEE802_11_RADIOTAP: _radiotap}


def _unsupported(linktype: int) -> str:
    return (f"link type {linktype} is not supported (Ethernet 1, NULL/loopback 0/108, PPP 9/50, raw IP 101/228/229, "
            f"Cisco HDLC 104, 802.11 105/127 and Linux cooked 113/276 are)")


MAX_FRAME = 262144            # libpcap's MAXIMUM_SNAPLEN: a larger record length means a corrupt file
MAX_BLOCK = 16 * 1024 * 1024  # a larger pcapng block is taken as corruption, not allocated
MAX_WIRELEN = 0xFFFFFFFF      # FrameBatch.wirelen is uint32
TS_MIN, TS_MAX = -(1 << 63), (1 << 63) - 1  # FrameBatch.ts_ns is int64 nanoseconds

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),   # microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1),         # nanoseconds
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class CaptureFileError(Exception):
    """A capture file is unreadable from `offset` on. str(): 'FILE: byte N: what was wrong'."""

    def __init__(self, path: str, offset: int, message: str):
        self.path, self.offset, self.message = path, offset, message
        super().__init__(f"{path}: byte {offset}: {message}")


class _Batcher:
    """Collects frames into FrameBatch chunks of bounded size."""

    def __init__(self, max_frames: int, max_bytes: int):
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._reset()

    def _reset(self):
        self.buf = bytearray()
        self.offset: list[int] = []
        self.caplen: list[int] = []
        self.wirelen: list[int] = []
        self.ts: list[int] = []

    def add(self, frame: bytes, wirelen: int, ts_ns: int) -> bool:
        self.offset.append(len(self.buf))
        self.caplen.append(len(frame))
        # a record may claim up to 2^32 - 1 bytes on the wire; a synthesized Ethernet header adds to that, and
        # the column is uint32: the claim saturates (it is a lie either way; the parser flags what it cannot hold)
        self.wirelen.append(min(max(wirelen, len(frame)), MAX_WIRELEN))
        self.ts.append(ts_ns)
        self.buf += frame
        return len(self.offset) >= self.max_frames or len(self.buf) >= self.max_bytes

    def take(self) -> FrameBatch | None:
        n = len(self.offset)
        if not n:
            return None
        batch = FrameBatch(
            np.frombuffer(bytes(self.buf), np.uint8), np.asarray(self.offset, np.int64),
            np.asarray(self.caplen, np.uint32), np.asarray(self.wirelen, np.uint32),
            np.asarray(self.ts, np.int64), np.full(n, NO_VLAN, np.int32))
        self._reset()
        return batch


def read_batches(path: str, *, batch_frames: int = 8192, batch_bytes: int = 8 << 20,
                 stats: ReaderStats | None = None) -> Iterator[FrameBatch]:
    """Yield the frames of a pcap or pcapng file as FrameBatch chunks, in file order.

    Raises CaptureFileError (after yielding every frame before the fault) when the file is
    truncated or corrupt, is neither pcap nor pcapng, has a version libpcap does not read, or is a
    pcap of an unsupported link type. Frames left out (a pcapng interface of an unsupported link type,
    802.11 management frames...) and records read leniently are counted in `stats`.
    """
    stats = stats if stats is not None else ReaderStats()
    batcher = _Batcher(batch_frames, batch_bytes)
    try:
        f = open(path, "rb", buffering=1 << 20)
    except OSError as exc:
        raise CaptureFileError(path, 0, f"cannot open: {exc.strerror}") from None
    with f:
        magic = f.read(4)
        if len(magic) < 4:
            raise CaptureFileError(path, 0, f"file too short for a capture header ({len(magic)} bytes)")
        if magic in _PCAP_MAGIC:
            endian, ts_mult = _PCAP_MAGIC[magic]
            rest = f.read(20)
            if len(rest) < 20:
                raise CaptureFileError(path, 4 + len(rest), "truncated pcap file header (need 24 bytes)")
            major, minor, _zone, _sigfigs, _snaplen, field = struct.unpack(endian + "HHiIII", rest)
            if not (major == 2 and minor <= 4 or major == 543 and minor == 0):  # as libpcap's sf-pcap.c
                raise CaptureFileError(path, 4, f"unsupported pcap version {major}.{minor} (2.0 to 2.4 are read)")
            # pre-2.3 writers (and DG/UX's 543.0) put the wire length first; 2.3 files come both ways
            lengths = _SWAPPED if minor < 3 or major == 543 else _MAYBE_SWAPPED if minor == 3 else None
            linktype = field & 0x03FFFFFF
            fcs = ((field >> 28) & 0xF) * 2 if field & 0x04000000 else 0  # FCS length, in 16-bit words
            if linktype == LINKTYPE_ETHERNET and not fcs and lengths is None:
                yield from _pcap_batches(path, f, endian, ts_mult, batch_frames, batch_bytes, stats)
                return
            if linktype not in _CONVERT:
                raise CaptureFileError(path, 20, _unsupported(linktype))
            frames = _pcap_frames(path, f, endian, ts_mult, linktype, fcs, lengths, stats)
        elif magic == _PCAPNG_SHB:
            frames = _pcapng_frames(path, f, magic, stats)
        else:
            raise CaptureFileError(path, 0, f"not a pcap or pcapng file (magic {magic.hex()})")
        error = None
        try:
            for frame, wirelen, ts_ns in frames:
                if batcher.add(frame, wirelen, ts_ns):
                    yield batcher.take()
        except CaptureFileError as exc:
            error = exc
        last = batcher.take()
        if last is not None:
            yield last
        if error is not None:
            raise error


_SWAPPED, _MAYBE_SWAPPED = 1, 2


def _bad_fraction(path: str, stats: ReaderStats, pos: int, frac: int, limit: int):
    """tcpdump prints such a record and reads on: keep it with its time as given (the fraction carries)."""
    stats.timestamps_out_of_range += 1
    if stats.timestamps_out_of_range == 1:
        unit = "microseconds" if limit == 1_000_000 else "nanoseconds"
        stats.warn(f"{path}: byte {pos}: timestamp fraction {frac} {unit} is out of range; the record is kept "
                   f"with its time as given (such records are counted in timestamps_out_of_range)")


def _ts_out_of_range(path: str, stats: ReaderStats, pos: int, ns: int) -> int:
    """A pcapng time (64 bits of its interface's units, plus if_tsoffset) beyond int64 nanoseconds, the years
    1677-2262: the record is kept with its time saturated at the nearer end, and counted."""
    stats.timestamps_out_of_range += 1
    if stats.timestamps_out_of_range == 1:
        stats.warn(f"{path}: byte {pos}: timestamp {ns} ns is outside what int64 nanoseconds hold; the record is "
                   f"kept with its time saturated (such records are counted in timestamps_out_of_range)")
    return TS_MAX if ns > TS_MAX else TS_MIN


def _pcap_batches(path: str, f: BinaryIO, endian: str, ts_mult: int, batch_frames: int, batch_bytes: int,
                  stats: ReaderStats):
    """Ethernet pcap: read big chunks and point the batch's offsets into them, no copy per frame."""
    unpack_from = struct.Struct(endian + "IIII").unpack_from
    chunk = max(batch_bytes, 2 * MAX_FRAME)
    frac_limit = 1_000_000 if ts_mult == 1000 else 1_000_000_000
    buf = b""
    base = 24  # file offset of buf[0]
    eof = False
    while True:
        if not eof:
            more = f.read(chunk)
            eof = not more
            buf = buf + more if buf else more
        data = np.frombuffer(buf, np.uint8)
        pos, n = 0, len(buf)
        offs, caps, wires, tss = [], [], [], []
        error = None
        while pos + 16 <= n:
            sec, frac, incl, orig = unpack_from(buf, pos)
            if incl > MAX_FRAME:
                error = CaptureFileError(path, base + pos, f"record length {incl} exceeds {MAX_FRAME}: corrupt file")
                break
            if pos + 16 + incl > n:
                break
            if frac >= frac_limit:
                _bad_fraction(path, stats, base + pos, frac, frac_limit)
            offs.append(pos + 16)
            caps.append(incl)
            wires.append(orig if orig > incl else incl)
            tss.append(sec * 1_000_000_000 + frac * ts_mult)
            pos += 16 + incl
            if len(offs) >= batch_frames:
                yield _batch(data, offs, caps, wires, tss)
                offs, caps, wires, tss = [], [], [], []
        if offs:
            yield _batch(data, offs, caps, wires, tss)
        if error is not None:
            raise error
        buf = buf[pos:]
        base += pos
        if eof:
            if len(buf) >= 16:
                incl = unpack_from(buf, 0)[2]
                raise CaptureFileError(path, base, f"truncated record: {len(buf) - 16} of {incl} bytes present")
            if buf:
                raise CaptureFileError(path, base, f"truncated record header ({len(buf)} of 16 bytes)")
            return


def _batch(data: np.ndarray, offs, caps, wires, tss) -> FrameBatch:
    n = len(offs)
    return FrameBatch(data, np.asarray(offs, np.int64), np.asarray(caps, np.uint32), np.asarray(wires, np.uint32),
                      np.asarray(tss, np.int64), np.full(n, NO_VLAN, np.int32))


def _strip_fcs(data: bytes, orig: int, fcs: int):
    """Drop an FCS of `fcs` bytes that ends each frame on the wire: what of it was captured, and its length."""
    cut = min(len(data), max(0, fcs - max(0, orig - len(data))))
    return (data[:len(data) - cut] if cut else data), max(0, orig - fcs)


def _convert(convert, data: bytes, orig: int):
    """(Ethernet frame, its wire length), or (_Skip, 0) for a frame left out."""
    if convert is None:
        return data, orig
    out, grow = convert(data, max(0, orig - len(data)))
    return out, max(0, orig + grow)


def _pcap_frames(path: str, f: BinaryIO, endian: str, ts_mult: int, linktype: int, fcs: int, lengths,
                 stats: ReaderStats):
    convert = _CONVERT[linktype]
    rec = struct.Struct(endian + "IIII")
    frac_limit = 1_000_000 if ts_mult == 1000 else 1_000_000_000
    pos = 24
    while True:
        hdr = f.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            raise CaptureFileError(path, pos, f"truncated record header ({len(hdr)} of 16 bytes)")
        sec, frac, incl, orig = rec.unpack(hdr)
        if lengths == _SWAPPED or lengths == _MAYBE_SWAPPED and incl > orig:
            incl, orig = orig, incl
        if incl > MAX_FRAME:
            raise CaptureFileError(path, pos, f"record length {incl} exceeds {MAX_FRAME}: corrupt file")
        data = f.read(incl)
        if len(data) < incl:
            raise CaptureFileError(path, pos, f"truncated record: {len(data)} of {incl} bytes present")
        if frac >= frac_limit:
            _bad_fraction(path, stats, pos, frac, frac_limit)
        if fcs:
            data, orig = _strip_fcs(data, orig, fcs)
        data, orig = _convert(convert, data, orig)
        pos += 16 + incl
        if isinstance(data, _Skip):
            stats.skip(data)
            continue
        yield data, orig, sec * 1_000_000_000 + frac * ts_mult


class _Iface:
    __slots__ = ("linktype", "snaplen", "ts_num", "ts_shift", "ts_div", "ts_offset_ns", "fcs", "name", "skipped")

    def __init__(self, linktype: int, snaplen: int):
        self.linktype, self.snaplen = linktype, snaplen
        self.fcs, self.name, self.skipped = 0, "", 0
        self.ts_num, self.ts_shift, self.ts_div, self.ts_offset_ns = 1000, 0, 1, 0  # default: microseconds

    def set_resolution(self, v: int):
        if v & 0x80:  # 2^-n seconds
            self.ts_num, self.ts_shift, self.ts_div = 1_000_000_000, v & 0x7F, 1
        elif v <= 9:
            self.ts_num, self.ts_shift, self.ts_div = 10 ** (9 - v), 0, 1
        else:
            self.ts_num, self.ts_shift, self.ts_div = 1, 0, 10 ** (v - 9)

    def ns(self, ts: int) -> int:
        return ((ts * self.ts_num) >> self.ts_shift) // self.ts_div + self.ts_offset_ns


def _pcapng_options(body: bytes, pos: int, endian: str):
    """Yield (code, value) from an options area, stopping at opt_endofopt or at a malformed option."""
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == 0:
            return
        if pos + 4 + length > len(body):
            return
        yield code, body[pos + 4:pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)


def _pcapng_frames(path: str, f: BinaryIO, first: bytes, stats: ReaderStats):
    pos = 0
    endian = "<"
    ifaces: list[_Iface] = []
    last_ts = 0
    head = first
    while True:
        if head is None:
            head = f.read(4)
        if not head:
            return
        if len(head) < 4:
            raise CaptureFileError(path, pos, f"truncated block header ({len(head)} of 8 bytes)")
        lenb = f.read(4)
        if len(lenb) < 4:
            raise CaptureFileError(path, pos, f"truncated block header ({4 + len(lenb)} of 8 bytes)")
        if head == _PCAPNG_SHB:
            bom = f.read(4)
            if len(bom) < 4:
                raise CaptureFileError(path, pos, "truncated section header block")
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureFileError(path, pos + 8, f"bad byte-order magic {bom.hex()} in section header")
            prefix = bom
        else:
            prefix = b""
        btype = struct.unpack(endian + "I", head)[0]
        blen = struct.unpack(endian + "I", lenb)[0]
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            raise CaptureFileError(path, pos, f"bad block length {blen} for block type 0x{btype:08x}")
        if prefix and blen < 28:  # a section header holds its byte-order magic, version and section length
            raise CaptureFileError(path, pos, f"section header block length {blen} is below its 28-byte minimum")
        want = blen - 8 - len(prefix)
        rest = f.read(want)
        if len(rest) < want:
            raise CaptureFileError(path, pos, f"truncated block: {8 + len(prefix) + len(rest)} of {blen} bytes present")
        body = prefix + rest[:-4]
        if struct.unpack(endian + "I", rest[-4:])[0] != blen:
            raise CaptureFileError(path, pos, f"block length {blen} does not match its trailing copy: corrupt block")
        if btype == 0x0A0D0D0A:
            if len(body) < 8:
                raise CaptureFileError(path, pos, "section header block too short")
            major, minor = struct.unpack_from(endian + "HH", body, 4)
            if major != 1 or minor not in (0, 2):  # as libpcap's sf-pcapng.c: 1.2 is read as 1.0
                raise CaptureFileError(path, pos + 12, f"unsupported pcapng version {major}.{minor} in section "
                                                       f"header (1.0 and 1.2 are read)")
            ifaces = []  # interface ids are per section
        elif btype == 1:
            if len(body) < 8:
                raise CaptureFileError(path, pos, "interface description block too short")
            linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body, 0)
            iface = _Iface(linktype, snaplen)
            for code, value in _pcapng_options(body, 8, endian):
                if code == 9 and len(value) >= 1:
                    iface.set_resolution(value[0])
                elif code == 2:
                    iface.name = value.decode("utf-8", "replace").rstrip("\0")
                elif code == 13 and len(value) >= 1:  # if_fcslen, in bits
                    iface.fcs = value[0] // 8
                elif code == 14 and len(value) >= 8:
                    iface.ts_offset_ns = struct.unpack(endian + "q", value[:8])[0] * 1_000_000_000
            ifaces.append(iface)
        elif btype in (6, 2, 3):
            if btype == 3:
                if len(body) < 4:
                    raise CaptureFileError(path, pos, "simple packet block too short")
                iface_id, orig = 0, struct.unpack_from(endian + "I", body, 0)[0]
                data_off = 4
                snap = ifaces[0].snaplen if ifaces else 0
                incl = min(orig, len(body) - 4, snap) if snap else min(orig, len(body) - 4)
                ts = None
            else:
                if len(body) < 20:
                    raise CaptureFileError(path, pos, "packet block too short")
                if btype == 6:
                    iface_id, hi, lo, incl, orig = struct.unpack_from(endian + "IIIII", body, 0)
                else:
                    iface_id, _drops, hi, lo, incl, orig = struct.unpack_from(endian + "HHIIII", body, 0)
                data_off = 20
                if incl > len(body) - 20:
                    raise CaptureFileError(path, pos, f"captured length {incl} exceeds its block ({len(body) - 20} bytes)")
                ts = (hi << 32) | lo
            if iface_id >= len(ifaces):
                raise CaptureFileError(path, pos, f"packet on interface {iface_id} but only {len(ifaces)} interface(s) described")
            iface = ifaces[iface_id]
            if ts is not None:
                last_ts = iface.ns(ts)
                if not TS_MIN <= last_ts <= TS_MAX:
                    last_ts = _ts_out_of_range(path, stats, pos, last_ts)
            if iface.linktype not in _CONVERT:  # one interface of a multi-interface capture: skip it, read on
                stats.skip(f"link type {iface.linktype}: not supported")
                if not iface.skipped:
                    name = f" ({iface.name})" if iface.name else ""
                    stats.warn(f"{path}: byte {pos}: interface {iface_id}{name}: {_unsupported(iface.linktype)}; "
                               f"its frames are skipped and counted in skipped_frames")
                iface.skipped += 1
            else:
                data = body[data_off:data_off + incl]
                if iface.fcs:
                    data, orig = _strip_fcs(data, orig, iface.fcs)
                data, orig = _convert(_CONVERT[iface.linktype], data, orig)
                if isinstance(data, _Skip):
                    stats.skip(data)
                else:
                    yield data, orig, last_ts
        pos += blen
        head = None


def write_pcap(path: str, batches, *, nanosecond: bool = False, big_endian: bool = False) -> int:
    """Write FrameBatch chunks to a classic pcap file (Ethernet); returns the number of frames.

    For handing the same frames to a peer tool (tcpdump, tshark) in tests and benchmarks.
    """
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    count = 0
    with open(path, "wb") as f:
        f.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, MAX_FRAME, LINKTYPE_ETHERNET))
        rec = struct.Struct(e + "IIII")
        for batch in batches:
            raw = batch.data.tobytes()
            for i in range(len(batch)):
                ts = int(batch.ts_ns[i])
                sec, frac = divmod(ts, 1_000_000_000)
                if not nanosecond:
                    frac //= 1000
                start, cl = int(batch.offset[i]), int(batch.caplen[i])
                f.write(rec.pack(sec, frac, cl, int(batch.wirelen[i])))
                f.write(raw[start:start + cl])
                count += 1
    return count
