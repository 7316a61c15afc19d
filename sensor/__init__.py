"""sensor: a network intrusion sensor.

Packets flow one way through small stages (source -> decode -> connection
tracker -> features -> scorer -> alert router -> sinks), in columnar
batches.  This package's public entry points are the ``sensor`` command
(:mod:`sensor.cli`) and :func:`sensor.pipeline.replay`.
"""

import os

# numpy's OpenBLAS would start spinning worker threads that compete with
# the pipeline for the CPU; the sensor does no linear algebra on its path.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
