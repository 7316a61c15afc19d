"""Record output: JSON lines and CSV, formatted by the compiled core."""

from sensor.output.records import RECORD_FORMATS, RecordWriter

__all__ = ["RECORD_FORMATS", "RecordWriter"]
