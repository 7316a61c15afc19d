"""Offline training and export of the sensor's models (``sensor train``).

Needs the ``train`` extra (scikit-learn, skl2onnx, onnx, matplotlib,
pandas); the running sensor never imports this package.
"""
