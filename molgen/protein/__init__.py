"""Protein side of molgen: reference MD (:mod:`.simulate`), structure I/O, featurisation, validation, metrics."""
