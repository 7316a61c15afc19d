"""Connection tracker stage: packet rows in, connection records out.

The per-packet work (flow lookup, Zeek's TCP state machine, history,
sequence-space byte counts, timers, release in start order) is compiled;
:class:`ConnectionTracker` configures it and hands out records as
structured arrays.
"""

from sensor.track.tracker import ConnectionTracker

__all__ = ["ConnectionTracker"]
