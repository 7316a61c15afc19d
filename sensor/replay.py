"""Replay: capture files through the pipeline, as an incident responder does.

Several files are read in the order given, as consecutive pieces of one
capture (a rotated ``tcpdump -C`` set), so connections spanning files stay
whole.  A file that is not a capture is reported and skipped; damage
inside a capture is reported with its offset and reading goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from sensor._logging import get_logger
from sensor.capture import Damage, NotACaptureError, open_capture
from sensor.config import SensorConfig
from sensor.pipeline import Pipeline, RecordSink, Summary

log = get_logger("sensor.replay")

#: called with (file, bytes read, file size) after every batch
Progress = Callable[[str, int, int], None]


def replay(
    paths: Sequence[str | Path],
    config: SensorConfig,
    sinks: Sequence[RecordSink],
    progress: Progress | None = None,
    uid_seed: int = 0,
) -> Summary:
    pipeline = Pipeline(config, sinks, uid_seed)
    summary = pipeline.summary
    for path in map(str, paths):
        try:
            reader = open_capture(path)
        except (NotACaptureError, OSError) as exc:
            message = str(exc) if isinstance(exc, NotACaptureError) else f"{path}: {exc.strerror}"
            log.error(message, file=path)
            summary.unreadable.append(message)
            continue
        summary.files += 1
        size = Path(path).stat().st_size
        reported = 0
        try:
            for batch in reader.batches():
                pipeline.feed(batch, path)
                reported = _report_damage(reader.damage, reported)
                if progress:
                    progress(path, reader.position, size)
        finally:
            reader.close()
        _report_damage(reader.damage, reported)
        summary.damage.extend(reader.damage)
        pipeline.end_of_source(path)
    return pipeline.finish()


def _report_damage(damage: list[Damage], already: int) -> int:
    """Log damage found since the last call; return how many are reported."""
    for d in damage[already:]:
        log.error(d.message(), file=d.path, offset=d.offset, reason=d.reason)
    return len(damage)
