"""Feature stage: the 41 KDD Cup 1999 features over connection-record batches."""

from sensor.features.kdd import KDD_DTYPE, KDD_FEATURES, RATES, SYMBOLIC, FeatureEngine

__all__ = ["KDD_DTYPE", "KDD_FEATURES", "RATES", "SYMBOLIC", "FeatureEngine"]
