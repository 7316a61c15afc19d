"""sensor: a network intrusion sensor.

Packets flow one way through small stages (source -> decode -> connection
tracker -> features -> scorer -> alert router -> sinks), in columnar
batches.  This package's public entry points are the ``sensor`` command
(:mod:`sensor.cli`) and :func:`sensor.pipeline.replay`.
"""

__version__ = "0.1.0"
