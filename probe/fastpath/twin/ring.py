"""Twin of probe/fastpath/kernels/ring.pxi: the same PacketRing API over a plain AF_PACKET socket recv loop.

Slow (one system call per frame, everything in Python) but it sees the same frames through the same
socket setup (probe/sources/afpacket.py) and gives the same FrameBatch contents: frame bytes, wire
length, VLAN tag (from PACKET_AUXDATA, as the ring's tp_vlan_tci) and a nanosecond timestamp
(SO_TIMESTAMPNS). Batch boundaries differ: the ring hands over whole blocks. next_records is
next_batch's frames through the twin's parse_frames and record_totals, the rare frames' bytes kept as the
ring keeps them, and the records within the window's bounds through aggregate_frames when asked. `linger`
is accepted and changes nothing: next_batch already takes every frame the socket holds.

PacketRing.over_buffer reads a buffer laid out as the kernel lays out a TPACKET_V3 ring instead of a
socket, through BlockWalk: the specification of the compiled ring's block walk, with its batch
boundaries (next_batch's bounds from the block headers, next_records' stop when the rare-frame buffer
is full), so the two give the same answers batch for batch.
"""
from __future__ import annotations

import select
import socket
import struct

import numpy as np

from probe.fastpath.layout import F_MALFORMED, FRAME_DTYPE, RARE_FLAGS
from probe.fastpath.twin.aggregate import aggregate_frames, record_totals
from probe.fastpath.twin.parse import parse_frames
from probe.sources import afpacket
from probe.sources.frames import NO_VLAN, FrameBatch
from probe.fastpath.rare import rare_index

__all__ = ["PacketRing"]

_BLOCK_DESC = afpacket.TPACKET_BLOCK_DESC
_FRAME_HDR = afpacket.TPACKET3_HDR
_STATUS_AT = _BLOCK_DESC.fields["block_status"][1]


_SNAPLEN = 262144  # tcpdump's default: every frame a NIC can hand over, whole
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
_TIMESPEC = struct.Struct("qq")
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)


class BlockWalk:
    """How the compiled ring walks its blocks, over a buffer laid out as a TPACKET_V3 ring.

    The ring is block_count blocks of block_size bytes. The kernel fills a block with frames, then sets
    TP_STATUS_USER in its block_status: the block is ours. Its header says how many frames it holds
    (num_pkts) and where the first one starts (offset_to_first_pkt); each frame's header says where its
    bytes start (tp_mac, from the header) and where the next frame's header is (tp_next_offset, 0 for
    the last). The walk takes the frames in order, one block after the other round the ring, and
    hands each block back (block_status = TP_STATUS_KERNEL) as soon as its last frame is taken, so the
    kernel can refill it. A block may be taken over several calls: the cursor (block, left, offset)
    says where the next frame is. One call enters each block at most once, so it never goes round the
    ring twice however fast the kernel refills it.

    The kernel wrote the headers, but a header that would send the walk outside its block (a first
    frame inside the block header, a frame header or frame bytes past the block's end) ends that block:
    the rest of its frames are skipped and the block goes back to the kernel.
    """

    def __init__(self, buffer: np.ndarray, block_size: int, block_count: int):
        self.mem = buffer
        self.block_size = block_size
        self.block_count = block_count
        self.block = 0    # the block the next frame is in
        self.left = 0     # frames not yet taken in that block (0: not entered)
        self.offset = 0   # where the next frame's header is in that block
        self.entered = 0  # blocks entered in this call

    def start_call(self) -> None:
        self.entered = 1 if self.left else 0

    def _header(self, dtype: np.dtype, at: int):
        return self.mem[at:at + dtype.itemsize].view(dtype)[0]

    def _base(self, block: int) -> int:
        return block * self.block_size

    def ready(self, block: int) -> bool:
        return bool(self._header(_BLOCK_DESC, self._base(block))["block_status"] & afpacket.TP_STATUS_USER)

    def release(self) -> None:
        """Hand the current block back to the kernel and move to the next."""
        at = self._base(self.block) + _STATUS_AT
        self.mem[at:at + 4] = afpacket.TP_STATUS_KERNEL
        self.left = 0
        self.block = (self.block + 1) % self.block_count

    def peek(self):
        """The frame at the cursor as (bytes, wire length, ts_ns, vlan, next_offset), entering the next
        block if it is ready; None when there is no frame to take."""
        while True:
            base = self._base(self.block)
            if self.left == 0:
                if self.entered == self.block_count or not self.ready(self.block):
                    return None
                desc = self._header(_BLOCK_DESC, base)
                self.entered += 1
                self.left = int(desc["num_pkts"])
                self.offset = int(desc["offset_to_first_pkt"])
            if (self.left and self.offset >= _BLOCK_DESC.itemsize
                    and self.offset + _FRAME_HDR.itemsize <= self.block_size):
                hdr = self._header(_FRAME_HDR, base + self.offset)
                start = self.offset + int(hdr["tp_mac"])
                snap = int(hdr["tp_snaplen"])
                if start + snap <= self.block_size:
                    wire, vlan = int(hdr["tp_len"]), NO_VLAN
                    if hdr["tp_status"] & afpacket.TP_STATUS_VLAN_VALID:
                        vlan = int(hdr["tp_vlan_tci"]) & 0x0FFF
                        wire += 4  # the 802.1Q tag was on the wire
                    ts = int(hdr["tp_sec"]) * 1_000_000_000 + int(hdr["tp_nsec"])
                    data = self.mem[base + start:base + start + snap].tobytes()
                    return data, wire & 0xFFFFFFFF, ts, vlan, int(hdr["tp_next_offset"])
            self.release()  # an empty or damaged block

    def advance(self, next_offset: int) -> None:
        """Step past the frame peek gave, handing its block back if it was the block's last."""
        self.left -= 1
        self.offset += next_offset
        if self.left == 0 or next_offset == 0:
            self.release()

    def bound(self, max_frames: int) -> tuple[int, int]:
        """Upper bounds on the frames (up to max_frames) and bytes next_batch can take, from the block
        headers alone: the rest of the current block, then each ready block's used length."""
        frames = nbytes = seen = 0
        block = self.block
        if self.left:
            frames, nbytes, seen = self.left, self.block_size - self.offset, 1
            block = (block + 1) % self.block_count
        while frames < max_frames and seen < self.block_count and self.ready(block):
            desc = self._header(_BLOCK_DESC, self._base(block))
            frames += int(desc["num_pkts"])
            nbytes += min(int(desc["blk_len"]), self.block_size)
            seen += 1
            block = (block + 1) % self.block_count
        return min(frames, max_frames), nbytes


class PacketRing:
    """Same constructor and methods as the compiled PacketRing; block_size x block_count sizes the
    socket's receive buffer (to hold about as many frames as the ring would)."""

    def __init__(self, interface: str, *, block_size: int = 1 << 20, block_count: int = 64,
                 block_timeout: float = 0.1, promiscuous: bool = True, bpf=(), fanout_group: int | None = None,
                 frame_size: int = 2048):
        if block_size < 4096 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two of at least 4096, got {block_size}")
        if block_count < 2:
            raise ValueError(f"block_count must be at least 2, got {block_count}")
        if frame_size < 128 or frame_size > block_size or block_size % frame_size:
            raise ValueError(f"frame_size must divide block_size, got {frame_size}")
        # A minimum-size frame takes ~128 bytes of ring but ~1 KiB of socket buffer (skb truesize):
        # eight times the ring's memory holds about as many frames as the ring would.
        rcvbuf = min(block_size * block_count * 8, (1 << 31) - 1)

        def configure(sock: socket.socket) -> None:
            sock.setsockopt(afpacket.SOL_PACKET, afpacket.PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, afpacket.SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, afpacket.SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)

        self.interface = interface
        self._totals = [0, 0, 0]
        self._busy = False
        self._close_pending = False
        self._walk: BlockWalk | None = None
        self._sock, self.ifindex = afpacket.open_packet_socket(
            interface, bpf=bpf, promiscuous=promiscuous, fanout_group=fanout_group, configure=configure)
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN | select.POLLERR)

    @classmethod
    def over_buffer(cls, buffer: np.ndarray, *, block_size: int, block_count: int) -> "PacketRing":
        """A ring over `buffer` laid out as a TPACKET_V3 ring, with no socket: BlockWalk's frames in the
        compiled ring's batches (see the compiled over_buffer)."""
        if block_size < 4096 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two of at least 4096, got {block_size}")
        if block_count < 2:
            raise ValueError(f"block_count must be at least 2, got {block_count}")
        if (not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8 or buffer.ndim != 1
                or not buffer.flags.c_contiguous or not buffer.flags.writeable):
            raise ValueError("over_buffer: buffer must be a writeable C-contiguous uint8 array")
        if len(buffer) != block_size * block_count:
            raise ValueError(f"over_buffer: buffer holds {len(buffer)} bytes, not block_size x block_count = "
                             f"{block_size * block_count}")
        ring = cls.__new__(cls)
        ring.interface, ring.ifindex = "<buffer>", 0
        ring._totals = [0, 0, 0]
        ring._busy = ring._close_pending = False
        ring._sock = None
        ring._walk = BlockWalk(buffer, block_size, block_count)
        return ring

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def closed(self) -> bool:
        return self._sock is None and self._walk is None

    def next_batch(self, timeout: float = 0.1, max_frames: int = 4096) -> FrameBatch:
        if self.closed:
            raise ValueError("capture ring is closed")
        if self._busy:
            raise RuntimeError("next_batch is already running on this ring in another thread")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self._busy = True
        try:
            if self._walk is not None:
                return self._copy_blocks(max_frames)
            return self._receive(timeout, max_frames)
        finally:
            self._busy = False
            if self._close_pending:
                self.close()

    def next_records(self, out: np.ndarray, timeout: float = 0.1, max_frames: int = 0, flag_counts=None,
                     aggregate=None, linger: float = 0.0):
        if self.closed:
            raise ValueError("capture ring is closed")
        if out.dtype != FRAME_DTYPE or not out.flags.c_contiguous or out.ndim != 1 or not out.flags.writeable:
            raise ValueError("next_records: out must be a writeable C-contiguous FRAME_DTYPE array")
        if max_frames <= 0 or max_frames > len(out):
            max_frames = len(out)
        if max_frames < 1:
            raise ValueError("next_records: out must hold at least one record")
        if flag_counts is not None and len(flag_counts) < 32:
            raise ValueError(f"next_records: flag_counts must hold 32 counters, got {len(flag_counts)}")
        if aggregate is not None:
            try:
                mac_t, ip_t, arp_t, recent, end, floor = aggregate
            except (TypeError, ValueError):
                raise TypeError("next_records: aggregate is (mac_table, ip_table, arp_table, recent, "
                                "window_end_ns, window_floor_ns)") from None
        if self._walk is not None:
            batch = self._parse_blocks(max_frames)
        else:
            batch = self.next_batch(timeout, max_frames)
        records, malformed = parse_frames(batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns,
                                          batch.vlan, out=out)
        totals = record_totals(records, flag_counts if flag_counts is not None else np.zeros(32, np.int64))
        index = rare_index(records).astype(np.int64)
        rare = None
        if len(index):
            rare = (index, FrameBatch.from_frames([batch.frame(int(i)) for i in index], batch.ts_ns[index].tolist(),
                                                  batch.wirelen[index].tolist(), batch.vlan[index].tolist()))
        aggregated = 0
        if aggregate is not None and end > 0:
            past = np.flatnonzero((records["ts_ns"] >= end) | (records["ts_ns"] < floor))
            aggregated = int(past[0]) if len(past) else len(records)
            aggregate_frames(records[:aggregated], mac_t, ip_t, arp_t, recent)
        return records, malformed, rare, totals, aggregated

    def _copy_blocks(self, max_frames: int) -> FrameBatch:
        """next_batch over a buffer: the frames the block headers promise, up to max_frames."""
        walk = self._walk
        max_n, max_bytes = walk.bound(max_frames)
        frames, ts, wire, vlans = [], [], [], []
        taken = 0
        walk.start_call()
        while len(frames) < max_n:
            frame = walk.peek()
            if frame is None:
                break
            data, length, stamp, vlan, next_offset = frame
            if taken + len(data) > max_bytes:
                break  # a block header under-states its length: the frame starts the next call
            frames.append(data)
            wire.append(length)
            ts.append(stamp)
            vlans.append(vlan)
            taken += len(data)
            walk.advance(next_offset)
        return FrameBatch.from_frames(frames, ts, wire, vlans) if frames else FrameBatch.empty()

    def _parse_blocks(self, max_frames: int) -> FrameBatch:
        """The frames next_records takes from a buffer: up to max_frames, stopping before a rare frame
        that would overflow the compiled ring's rare-frame buffer (block_size bytes)."""
        walk = self._walk
        frames, ts, wire, vlans = [], [], [], []
        rare_bytes = 0
        walk.start_call()
        while len(frames) < max_frames:
            frame = walk.peek()
            if frame is None:
                break
            data, length, stamp, vlan, next_offset = frame
            one = FrameBatch.from_frames([data], [stamp], [length], [vlan])
            flags = int(parse_frames(one.data, one.offset, one.caplen, one.wirelen, one.ts_ns, one.vlan)[0]["flags"][0])
            if not flags & F_MALFORMED and flags & RARE_FLAGS:
                if rare_bytes + len(data) > walk.block_size:
                    break  # the rare-frame buffer is full: this frame starts the next call
                rare_bytes += len(data)
            frames.append(data)
            wire.append(length)
            ts.append(stamp)
            vlans.append(vlan)
            walk.advance(next_offset)
        return FrameBatch.from_frames(frames, ts, wire, vlans) if frames else FrameBatch.empty()

    def _receive(self, timeout: float, max_frames: int) -> FrameBatch:
        frames: list[bytes] = []
        ts: list[int] = []
        wire: list[int] = []
        vlans: list[int] = []
        if timeout > 0 and not self._poll.poll(int(timeout * 1000)):
            return FrameBatch.empty()
        recvmsg = self._sock.recvmsg
        while len(frames) < max_frames:
            try:
                data, ancdata, flags, _addr = recvmsg(_SNAPLEN, _CMSG_SPACE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # interface went down or away: the socket says which
                raise afpacket.socket_error(self.interface, exc.errno) from None
            length, vlan, stamp = len(data), NO_VLAN, 0
            for level, kind, payload in ancdata:
                if level == afpacket.SOL_PACKET and kind == afpacket.PACKET_AUXDATA:
                    status, tp_len, _snap, _mac, _net, tci, _tpid = _AUXDATA.unpack_from(payload)
                    length = tp_len
                    if status & afpacket.TP_STATUS_VLAN_VALID:
                        vlan = tci & 0x0FFF
                        length += 4  # the 802.1Q tag was on the wire
                elif level == socket.SOL_SOCKET and kind == afpacket.SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    stamp = sec * 1_000_000_000 + nsec
            frames.append(data)
            wire.append(length)
            vlans.append(vlan)
            ts.append(stamp)
        return FrameBatch.from_frames(frames, ts, wire, vlans) if frames else FrameBatch.empty()

    def statistics(self) -> dict:
        if self._sock is not None:
            for i, v in enumerate(afpacket.read_statistics(self._sock, False)):
                self._totals[i] += v
        packets, drops, freeze = self._totals
        return {"packets": packets, "drops": drops, "freeze_queue_count": freeze}

    def close(self) -> None:
        if self._busy:
            self._close_pending = True
            return
        self._walk = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "PacketRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
