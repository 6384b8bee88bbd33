"""pav: personalized head avatars, one deformable NeRF for every appearance of a person.

One package per stage: prepare, track, train, render, evaluate, viewer, synthetic; data, head, deform, fields,
ops and metrics are the components they share, common the small helpers (typed command line, video files,
cache). docs/ARCHITECTURE.md is the map.
"""

from ._moved import install as _install_moved

__version__ = "0.1.0"

_install_moved()  # old module paths (pav.checkpoint, pav.tracking, ...) resolve to their new place
