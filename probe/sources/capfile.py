"""Capture files (pcap and pcapng) read as a stream of FrameBatch chunks, with bounded memory.

    for batch in read_batches(path):       # FrameBatch, at most `batch_frames` frames each
        ...
    # a truncated or corrupt file raises CaptureFileError *after* every frame before the fault was
    # yielded, so a caller that processes each batch as it comes has lost nothing.

pcap: both byte orders, microsecond and nanosecond timestamps. pcapng: SHB/IDB/EPB/SPB (and the
obsolete Packet Block), several interfaces with their own timestamp resolution/offset, sections of
either byte order, unknown blocks skipped. Ethernet (LINKTYPE_ETHERNET = 1) frames pass through as
they are; Linux cooked captures (`tcpdump -i any`: SLL 113, SLL2 276) and raw IP (101, 228, 229) are
given a synthesized Ethernet header (source MAC from the cooked header, or zero; destination broadcast,
multicast or zero from the packet type) so the same parser reads them. Any other link type is a
CaptureFileError naming it.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

import numpy as np

from probe.sources.frames import NO_VLAN, FrameBatch

__all__ = ["CaptureFileError", "read_batches", "LINKTYPE_ETHERNET"]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 101, 228, 229
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276
_ZERO_MAC = bytes(6)
_BCAST_MAC = b"\xff" * 6
_MCAST_MAC = b"\x01\x00\x5e\x00\x00\x01"


def _eth_header(pkttype: int, src: bytes, proto: int, payload: bytes) -> bytes:
    dst = _BCAST_MAC if pkttype == 1 else _MCAST_MAC if pkttype == 2 else _ZERO_MAC
    if proto in (0x0001, 0x0004):  # Novell raw 802.3 / 802.2 LLC: an 802.3 length field instead
        proto = min(len(payload), 1500)
    return dst + src + proto.to_bytes(2, "big") + payload


def _sll(frame: bytes) -> bytes:
    if len(frame) < 16:
        return frame[:0]  # a runt: the parser counts it malformed
    pkttype, _hatype, halen = struct.unpack_from(">HHH", frame, 0)
    src = frame[6:12] if halen == 6 else _ZERO_MAC
    return _eth_header(pkttype, src, struct.unpack_from(">H", frame, 14)[0], frame[16:])


def _sll2(frame: bytes) -> bytes:
    if len(frame) < 20:
        return frame[:0]
    proto = struct.unpack_from(">H", frame, 0)[0]
    pkttype, halen = frame[10], frame[11]
    src = frame[12:18] if halen == 6 else _ZERO_MAC
    return _eth_header(pkttype, src, proto, frame[20:])


def _raw_ip(frame: bytes) -> bytes:
    version = frame[0] >> 4 if frame else 0
    return _ZERO_MAC + _ZERO_MAC + (b"\x86\xdd" if version == 6 else b"\x08\x00") + frame


# link type -> (frame converter, bytes the converted header adds to the wire length)
_CONVERT = {LINKTYPE_ETHERNET: (None, 0), LINKTYPE_LINUX_SLL: (_sll, -2), LINKTYPE_LINUX_SLL2: (_sll2, -6),
            LINKTYPE_RAW: (_raw_ip, 14), LINKTYPE_IPV4: (_raw_ip, 14), LINKTYPE_IPV6: (_raw_ip, 14)}


def _unsupported(linktype: int) -> str:
    return (f"link type {linktype} is not supported (Ethernet 1, Linux cooked 113/276 and raw IP 101/228/229 are)")
MAX_FRAME = 262144            # libpcap's MAXIMUM_SNAPLEN: a larger record length means a corrupt file
MAX_BLOCK = 16 * 1024 * 1024  # a larger pcapng block is taken as corruption, not allocated

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
        self.wirelen.append(max(wirelen, len(frame)))
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


def read_batches(path: str, *, batch_frames: int = 8192, batch_bytes: int = 8 << 20) -> Iterator[FrameBatch]:
    """Yield the frames of a pcap or pcapng file as FrameBatch chunks, in file order.

    Raises CaptureFileError (after yielding every frame before the fault) when the file is
    truncated or corrupt, is neither pcap nor pcapng, or holds a link type other than Ethernet.
    """
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
            linktype = struct.unpack(endian + "HHiIII", rest)[5] & 0x0FFFFFFF
            if linktype == LINKTYPE_ETHERNET:
                yield from _pcap_batches(path, f, endian, ts_mult, batch_frames, batch_bytes)
                return
            frames = _pcap_frames(path, f, endian, ts_mult, linktype)
        elif magic == _PCAPNG_SHB:
            frames = _pcapng_frames(path, f, magic)
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


def _pcap_batches(path: str, f: BinaryIO, endian: str, ts_mult: int, batch_frames: int, batch_bytes: int):
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
                error = CaptureFileError(path, base + pos, f"timestamp fraction {frac} out of range: corrupt record")
                break
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


def _pcap_frames(path: str, f: BinaryIO, endian: str, ts_mult: int, linktype: int):
    if linktype not in _CONVERT:
        raise CaptureFileError(path, 20, _unsupported(linktype))
    convert, grow = _CONVERT[linktype]
    rec = struct.Struct(endian + "IIII")
    pos = 24
    while True:
        hdr = f.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            raise CaptureFileError(path, pos, f"truncated record header ({len(hdr)} of 16 bytes)")
        sec, frac, incl, orig = rec.unpack(hdr)
        if incl > MAX_FRAME:
            raise CaptureFileError(path, pos, f"record length {incl} exceeds {MAX_FRAME}: corrupt file")
        data = f.read(incl)
        if len(data) < incl:
            raise CaptureFileError(path, pos, f"truncated record: {len(data)} of {incl} bytes present")
        if ts_mult == 1000 and frac >= 1_000_000 or frac >= 1_000_000_000:
            raise CaptureFileError(path, pos, f"timestamp fraction {frac} out of range: corrupt record")
        if convert is not None:
            data, orig = convert(data), max(0, orig + grow)
        yield data, orig, sec * 1_000_000_000 + frac * ts_mult
        pos += 16 + incl


class _Iface:
    __slots__ = ("linktype", "snaplen", "ts_num", "ts_shift", "ts_div", "ts_offset_ns")

    def __init__(self, linktype: int, snaplen: int):
        self.linktype, self.snaplen = linktype, snaplen
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


def _pcapng_frames(path: str, f: BinaryIO, first: bytes):
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
        want = blen - 8 - len(prefix)
        rest = f.read(want)
        if len(rest) < want:
            raise CaptureFileError(path, pos, f"truncated block: {8 + len(prefix) + len(rest)} of {blen} bytes present")
        body = prefix + rest[:-4]
        if struct.unpack(endian + "I", rest[-4:])[0] != blen:
            raise CaptureFileError(path, pos, f"block length {blen} does not match its trailing copy: corrupt block")
        if btype == 0x0A0D0D0A:
            ifaces = []  # interface ids are per section
        elif btype == 1:
            if len(body) < 8:
                raise CaptureFileError(path, pos, "interface description block too short")
            linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body, 0)
            iface = _Iface(linktype, snaplen)
            for code, value in _pcapng_options(body, 8, endian):
                if code == 9 and len(value) >= 1:
                    iface.set_resolution(value[0])
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
            if iface.linktype not in _CONVERT:
                raise CaptureFileError(path, pos, f"interface {iface_id}: {_unsupported(iface.linktype)}")
            if ts is not None:
                last_ts = iface.ns(ts)
            data = body[data_off:data_off + incl]
            convert, grow = _CONVERT[iface.linktype]
            if convert is not None:
                data, orig = convert(data), max(0, orig + grow)
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
