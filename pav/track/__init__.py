"""FLAME tracking of prepared video collections: one shape for the person, motion per frame."""

from .pipeline import TrackConfig, TrackConfigError, track

__all__ = ["TrackConfig", "TrackConfigError", "track"]
