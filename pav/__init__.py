"""pav: personalized head avatars, one deformable NeRF for every appearance of a person."""

__version__ = "0.1.0"
