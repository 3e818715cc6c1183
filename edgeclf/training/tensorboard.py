"""TensorBoard event files, written directly: scalars need no TensorFlow or tensorboard install.

An event file is a sequence of TFRecords (length, masked CRC-32C, payload, masked CRC-32C) whose
payloads are `Event` protobufs; the few fields scalars need are encoded by hand below.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from .._io import atomic_path


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord framing uses."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    c = crc32c(data)
    return struct.pack("<I", (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    key = _varint(num << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _event(wall: float, step: int = 0, file_version: str | None = None, scalars: dict[str, float] | None = None) -> bytes:
    msg = _field(1, 1, struct.pack("<d", wall)) + _field(2, 0, _varint(step))
    if file_version:
        msg += _field(3, 2, file_version.encode())
    if scalars:
        values = b"".join(_field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", v)))
                          for tag, v in scalars.items())
        msg += _field(5, 2, values)
    return msg


def _record(payload: bytes) -> bytes:
    n = struct.pack("<Q", len(payload))
    return n + _masked(n) + payload + _masked(payload)


def _scalars(row: dict) -> dict[str, float]:
    """A history row's numeric columns as TensorBoard tags ('train_acc' → 'acc/train')."""
    out = {}
    for k, v in row.items():
        if k == "epoch" or not isinstance(v, (int, float)):
            continue
        part, _, metric = k.partition("_")
        out[f"{metric}/{part}" if metric else k] = float(v)
    return out


class ScalarWriter:
    """One event file that grows by a record per epoch, so TensorBoard shows a run while it trains."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        d = Path(log_dir)
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("events.out.tfevents.*"):
            old.unlink()  # one run dir, one event file: a rerun replaces its curves
        now = time.time()
        self.path = d / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(_record(_event(now, file_version="brain.Event:2")))

    def add(self, row: dict) -> None:
        """Append one epoch's scalars (a crash leaves every finished epoch readable)."""
        with open(self.path, "ab") as f:
            f.write(_record(_event(time.time(), int(row["epoch"]), scalars=_scalars(row))))


def write_scalars(log_dir: str | os.PathLike[str], history: list[dict]) -> Path:
    """One event file with every numeric column of `history` as a scalar per epoch ('train_acc' → 'acc/train')."""
    w = ScalarWriter(log_dir)
    for row in history:
        w.add(row)
    return w.path
