"""Decode stage: link layer, IP, transport headers, into packet-row columns.

The per-packet header walk is compiled (``_fastpath.decode``); IP
fragments are then reassembled by :class:`FragmentReassembler`, which
counts the KDD ``wrong_fragment`` cases.
"""

from __future__ import annotations

from sensor import _fastpath
from sensor.capture import PacketBatch
from sensor.decode.fragments import FragmentReassembler, FragmentTimeouts

__all__ = ["FragmentReassembler", "FragmentTimeouts", "decode"]


def decode(batch: PacketBatch) -> None:
    """Fill the header columns of the batch's rows in place."""
    _fastpath.decode(batch.buffer, batch.rows)
