"""Connection tracker stage: packet rows in, connection records out.

The per-packet work (flow lookup, Zeek's TCP state machine, history,
sequence-space byte counts, timers) is compiled; :class:`ConnectionTracker`
configures it and hands out finished records as structured arrays.
:class:`StartOrder` then releases them in connection start order.
"""

from sensor.track.ordering import StartOrder
from sensor.track.tracker import ConnectionTracker

__all__ = ["ConnectionTracker", "StartOrder"]
