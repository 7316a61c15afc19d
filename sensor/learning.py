"""Learning mode inside ``sensor run``: the site's own traffic for a
configured period, then ``sensor learn`` on it, off the packet loop.

For ``learning.seconds`` after start, every connection record is written
as JSONL to ``<learning.out>/learning.jsonl``.  Then a helper thread fits
the autoencoder and isolation forest to those records, calibrating at
``learning.false_positive_rate``, and writes a complete model set to
``learning.out`` (with the classifier of the set the daemon runs).  The daemon keeps running on its current models: an
admin who is content with the result sets ``alerts.models`` to that
directory and reloads.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sensor._logging import get_logger
from sensor.config import Learning
from sensor.output import RecordWriter

log = get_logger("sensor.learning")


class LearningPeriod:
    """A record sink for the period, then one learning run."""

    def __init__(self, settings: Learning, base_models: str | None = None) -> None:
        if not settings.out:
            raise ValueError("learning.seconds is set: learning.out must name the directory for the site's models")
        _import_learning()   # fail at start, not after the period; and before root is dropped

        self.settings = settings
        self.base_models = base_models      # the set the daemon runs; its classifier joins the site's models
        self.out = Path(settings.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.records = self.out / "learning.jsonl"
        self._file = open(self.records, "wb", buffering=0)
        self._writer = RecordWriter(self._file, "jsonl")
        self._ends = time.monotonic() + settings.seconds
        self.thread: threading.Thread | None = None

    # -- RecordSink: the period's records ---------------------------------------------

    def write(self, conns, features) -> None:
        if self._file is not None:
            self._writer.write(conns, features)

    def close(self) -> None:
        self._stop_recording()

    # -- the daemon's loop calls this ---------------------------------------------------

    def tick(self) -> None:
        """At the period's end: stop recording and learn on a helper thread."""
        if self.thread is None and time.monotonic() >= self._ends:
            self._stop_recording()
            self.thread = threading.Thread(target=self._learn, name="sensor-learn", daemon=True)
            self.thread.start()

    def _stop_recording(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _learn(self) -> None:
        from dataclasses import replace

        from sensor.models.modelset import default_models_dir
        from sensor.training.learn import learn, site_data
        from sensor.training.train import TrainSettings

        log.info("learning from the site's traffic", records=str(self.records), seconds=self.settings.seconds)
        try:
            data = site_data([self.records])
            # one core: the other belongs to capture and detection
            settings = replace(TrainSettings(), false_positive_rate=self.settings.false_positive_rate, jobs=1)
            paths = learn(data, self.out, self.base_models or default_models_dir(), settings)
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, the daemon goes on and says so
            log.error("learning failed; the running models stay", error=f"{type(exc).__name__}: {exc}")
            return
        log.info("learned the site's models; set alerts.models to use them and reload", models=str(self.out),
                 connections=len(data.features), files=sorted(str(p) for p in paths.values()))


def _import_learning() -> None:
    """The training code learning runs, imported now: it needs the training
    extra (an ImportError here stops start-up), and once root is dropped
    the Python installation may not be readable (a pyenv under /root)."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.exceptions  # noqa: F401
    import sklearn.neural_network  # noqa: F401

    import sensor.evaluation.metrics  # noqa: F401
    import sensor.training.learn  # noqa: F401
