"""The collection format, version 2: the one on-disk layout every data source is converted to.

    ROOT/collection.json   {"format": "pav-collection", "version": 2, "subject", "head_model",
                            "n_shape", "n_expr", "image_size": [H, W],
                            "appearances": [{"name", "kind"}], "cross": [{"appearance", "drive"}]}
    ROOT/shape.npy         identity shape [n_shape], shared by every appearance
    ROOT/<appearance>/
        frames/<cam>/<id:06d>.png   RGB 8-bit (.jpg also accepted)
        masks/<cam>/<id:06d>.png    8-bit single-channel alpha matte
        valid/<cam>/<id:06d>.png    optional (version 2), for every frame or none: 255 where the pixel is real,
                                    0 where it is unknown (a crop past the source frame); no stage uses those
        cameras.npz                 K [C,3,3], c2w [C,4,4] or [T,C,4,4] (OpenCV camera-to-world), names [C]
        flame.npz                   frame_ids [T], expr [T,n_expr], rotations [T,5,3], transl [T,3]
        landmarks.npz               optional: arrays [T,C,...]; index arrays named "*_indices" [M]
        split.json                  {"version": 2, "train": [ids], "val": [ids], "test": [ids]}: validation frames
                                    are neither trained on nor reported; a split.json without a version takes
                                    its validation from its train frames (splits.py)
    ROOT/cross/<appearance>/<drive>/{frames,masks}/<cam>/<id:06d>.png
                                    <appearance> rendered with <drive>'s cameras and FLAME
                                    parameters at <drive>'s test frame ids (synthetic data only)

`CollectionWriter` writes it, collection.json last and atomically, so an interrupted write leaves
nothing that opens. `Collection.open` checks all of it and raises one `CollectionError` that lists
every problem, each naming the file (relative to ROOT) and the field. Version-1 collections (no valid/) open
unchanged: every pixel is real.

format.py holds the names, the dataclasses and the paths; checks.py and meta.py validate the arrays and
collection.json, adding to problems.py's problem list; images.py verifies and reads the image files; reader.py reads
a collection into opened.py's `Collection` and `Appearance`; writer.py holds `CollectionWriter`.
"""

from .format import (
    CAMERAS_FILE,
    CROSS_DIR,
    FLAME_FILE,
    FORMAT,
    FRAME_EXTS,
    FRAMES_DIR,
    KINDS,
    LANDMARKS_FILE,
    MASK_EXTS,
    MASKS_DIR,
    META_FILE,
    PNG_COMPRESS_LEVEL,
    ROTATION_NAMES,
    SHAPE_FILE,
    SPLIT_FILE,
    SPLIT_VERSION,
    VALID_DIR,
    VERIFY_LEVELS,
    VERSION,
    AppearanceSpec,
    Cameras,
    CollectionMeta,
    FlameSequence,
    Split,
    VerifyLevel,
)
from .opened import Appearance, Collection
from .problems import CollectionError
from .reader import read_flame_npz
from .writer import CollectionWriter

__all__ = [
    "Appearance", "AppearanceSpec", "CAMERAS_FILE", "CROSS_DIR", "Cameras", "Collection", "CollectionError",
    "CollectionMeta", "CollectionWriter", "FLAME_FILE", "FORMAT", "FRAMES_DIR", "FRAME_EXTS", "FlameSequence",
    "KINDS", "LANDMARKS_FILE", "MASKS_DIR", "MASK_EXTS", "META_FILE", "PNG_COMPRESS_LEVEL", "ROTATION_NAMES",
    "SHAPE_FILE", "SPLIT_FILE", "SPLIT_VERSION", "VALID_DIR",
    "Split", "VERIFY_LEVELS", "VERSION", "VerifyLevel", "read_flame_npz",
]
