"""Twin of probe/fastpath/kernels/ring.pxi: the same PacketRing API over a plain AF_PACKET socket recv loop.

Slow (one system call per frame, everything in Python) but it sees the same frames through the same
socket setup (probe/sources/afpacket.py) and gives the same FrameBatch contents: frame bytes, wire
length, VLAN tag (from PACKET_AUXDATA, as the ring's tp_vlan_tci) and a nanosecond timestamp
(SO_TIMESTAMPNS). Batch boundaries differ: the ring hands over whole blocks. next_records is
next_batch's frames through the twin's parse_frames and record_totals, the rare frames' bytes kept as the
ring keeps them, and the records before the window's end through aggregate_frames when asked. `linger`
is accepted and changes nothing: next_batch already takes every frame the socket holds.
"""
from __future__ import annotations

import select
import socket
import struct

import numpy as np

from probe.fastpath.layout import FRAME_DTYPE
from probe.fastpath.twin.aggregate import aggregate_frames, record_totals
from probe.fastpath.twin.parse import parse_frames
from probe.sources import afpacket
from probe.sources.frames import NO_VLAN, FrameBatch
from probe.fastpath.rare import rare_index

__all__ = ["PacketRing"]

_SNAPLEN = 262144  # tcpdump's default: every frame a NIC can hand over, whole
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
_TIMESPEC = struct.Struct("qq")
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)


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
        self._sock, self.ifindex = afpacket.open_packet_socket(
            interface, bpf=bpf, promiscuous=promiscuous, fanout_group=fanout_group, configure=configure)
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN | select.POLLERR)

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def closed(self) -> bool:
        return self._sock is None

    def next_batch(self, timeout: float = 0.1, max_frames: int = 4096) -> FrameBatch:
        if self._sock is None:
            raise ValueError("capture ring is closed")
        if self._busy:
            raise RuntimeError("next_batch is already running on this ring in another thread")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self._busy = True
        try:
            return self._receive(timeout, max_frames)
        finally:
            self._busy = False
            if self._close_pending:
                self.close()

    def next_records(self, out: np.ndarray, timeout: float = 0.1, max_frames: int = 0, flag_counts=None,
                     aggregate=None, linger: float = 0.0):
        if self._sock is None:
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
                mac_t, ip_t, arp_t, recent, end = aggregate
            except (TypeError, ValueError):
                raise TypeError("next_records: aggregate is (mac_table, ip_table, arp_table, recent, "
                                "window_end_ns)") from None
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
            past = np.flatnonzero(records["ts_ns"] >= end)
            aggregated = int(past[0]) if len(past) else len(records)
            aggregate_frames(records[:aggregated], mac_t, ip_t, arp_t, recent)
        return records, malformed, rare, totals, aggregated

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
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "PacketRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
