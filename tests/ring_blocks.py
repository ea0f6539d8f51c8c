"""Lay out frames as the kernel lays out a TPACKET_V3 receive ring, so the ring's block walk is tested
without root or a socket (PacketRing.over_buffer reads such a buffer).

The layout is the kernel's (net/packet/af_packet.c): a block starts with struct tpacket_block_desc, its
first frame header at offset_to_first_pkt (48); each frame is a struct tpacket3_hdr whose frame bytes
start at tp_mac from the header (82 for Ethernet: the header, a struct sockaddr_ll and 16-byte alignment
of the network header), the next header at tp_next_offset (the frame's end, aligned to 16).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.sources.afpacket import (TP_STATUS_KERNEL, TP_STATUS_USER, TP_STATUS_VLAN_VALID, TPACKET3_HDR,
                                    TPACKET_BLOCK_DESC)

FIRST_FRAME = TPACKET_BLOCK_DESC.itemsize
MAC_OFFSET = 82


@dataclass
class Frame:
    data: bytes
    ts_ns: int = 0
    wirelen: int | None = None  # what tp_len says; the frame's length when None
    vlan: int | None = None     # a VLAN tag the kernel moved into tp_vlan_tci


class SyntheticRing:
    """block_count blocks of block_size bytes, every block the kernel's (TP_STATUS_KERNEL) until filled."""

    def __init__(self, block_size: int = 4096, block_count: int = 4):
        self.block_size = block_size
        self.block_count = block_count
        self.mem = np.zeros(block_size * block_count, np.uint8)

    def block(self, index: int):
        """The block's struct tpacket_block_desc, writeable in place."""
        at = index * self.block_size
        return self.mem[at:at + TPACKET_BLOCK_DESC.itemsize].view(TPACKET_BLOCK_DESC)[0]

    def frame_header(self, index: int, offset: int):
        """The struct tpacket3_hdr at `offset` in block `index`, writeable in place."""
        at = index * self.block_size + offset
        return self.mem[at:at + TPACKET3_HDR.itemsize].view(TPACKET3_HDR)[0]

    def status(self, index: int) -> int:
        return int(self.block(index)["block_status"])

    def statuses(self) -> list[int]:
        return [self.status(i) for i in range(self.block_count)]

    def fits(self, frames: list[Frame]) -> bool:
        end = FIRST_FRAME
        for f in frames:
            end = _align(end + MAC_OFFSET + len(f.data))
        return end <= self.block_size

    def fill(self, index: int, frames: list[Frame], *, ready: bool = True) -> list[int]:
        """Write `frames` into block `index` as the kernel would and, when `ready`, hand the block over
        (TP_STATUS_USER). Returns each frame header's offset in the block."""
        if not self.fits(frames):
            raise ValueError(f"{len(frames)} frames do not fit in a {self.block_size}-byte block")
        base = index * self.block_size
        self.mem[base:base + self.block_size] = 0
        offsets, off = [], FIRST_FRAME
        for i, f in enumerate(frames):
            hdr = self.frame_header(index, off)
            end = _align(off + MAC_OFFSET + len(f.data))
            hdr["tp_next_offset"] = end - off if i + 1 < len(frames) else 0
            hdr["tp_sec"], hdr["tp_nsec"] = divmod(f.ts_ns, 1_000_000_000)
            hdr["tp_snaplen"] = len(f.data)
            hdr["tp_len"] = len(f.data) if f.wirelen is None else f.wirelen
            hdr["tp_status"] = TP_STATUS_USER
            if f.vlan is not None:
                hdr["tp_status"] |= TP_STATUS_VLAN_VALID
                hdr["tp_vlan_tci"] = f.vlan
                hdr["tp_vlan_tpid"] = 0x8100
            hdr["tp_mac"] = MAC_OFFSET
            hdr["tp_net"] = MAC_OFFSET + 14
            self.mem[base + off + MAC_OFFSET:base + off + MAC_OFFSET + len(f.data)] = np.frombuffer(f.data, np.uint8)
            offsets.append(off)
            off = end
        desc = self.block(index)
        desc["version"] = 1
        desc["num_pkts"] = len(frames)
        desc["offset_to_first_pkt"] = FIRST_FRAME
        desc["blk_len"] = off
        desc["block_status"] = TP_STATUS_USER if ready else TP_STATUS_KERNEL
        return offsets

    def hand_over(self, index: int) -> None:
        self.block(index)["block_status"] = TP_STATUS_USER


def _align(n: int) -> int:
    return (n + 15) & ~15
