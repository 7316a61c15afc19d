"""Feature stage: KDD Cup 1999 features computed over connection-record batches."""

from sensor.features.basic import BASIC_FEATURES, FLAG_NAMES, PROTOCOL_NAMES, basic_features

__all__ = ["BASIC_FEATURES", "FLAG_NAMES", "PROTOCOL_NAMES", "basic_features"]
