"""Just enough ISO BMFF reading to check an MP4: its brand and its duration."""

from __future__ import annotations

import struct


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, payload start, box end) of each box between start and end."""
    end = len(data) if end is None else end
    found = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            raise ValueError(f"corrupt box at {offset}")
        found.append((kind.decode("latin-1"), offset + header, offset + size))
        offset += size
    return found


def duration_seconds(data: bytes) -> float:
    """The movie duration from moov/mvhd."""
    for kind, payload, box_end in boxes(data):
        if kind != "moov":
            continue
        for inner, inner_payload, _ in boxes(data, payload, box_end):
            if inner != "mvhd":
                continue
            version = data[inner_payload]
            if version == 1:
                timescale, duration = struct.unpack(">IQ", data[inner_payload + 20 : inner_payload + 32])
            else:
                timescale, duration = struct.unpack(">II", data[inner_payload + 12 : inner_payload + 20])
            return float(duration / timescale)
    raise ValueError("no moov/mvhd box")


def video_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height of the first track with pixels, from its moov/trak/tkhd box (16.16 fixed
    point; version 1 boxes have 64-bit times, which moves the size 12 bytes further)."""
    for kind, payload, end in boxes(data):
        if kind != "moov":
            continue
        for inner, inner_payload, inner_end in boxes(data, payload, end):
            if inner != "trak":
                continue
            for leaf, leaf_payload, _ in boxes(data, inner_payload, inner_end):
                if leaf != "tkhd":
                    continue
                offset = leaf_payload + (88 if data[leaf_payload] == 1 else 76)
                width, height = struct.unpack(">II", data[offset : offset + 8])
                if width:
                    return width >> 16, height >> 16
    raise AssertionError("no video track")
