"""How a video's frames are split: the named protocols that hold out its end, and the validation stretch just
before the held-out frames (frames neither trained on nor reported: every default is chosen on them)."""

from __future__ import annotations

from collections.abc import Sequence

from .format import SPLIT_VERSION, Split

VAL_FRACTION = 0.05  # the validation stretch's share of a video's frames
REFERENCE_FRAMES = 1000  # a clip shorter than this holds out the same share of itself as a 1000-frame one
# protocol -> source frames held out at the end of a REFERENCE_FRAMES clip (tail: test_fraction of the kept frames)
HELD_OUT_FRAMES = {"tail": None, "insta": 350, "flashavatar": 500}
PROTOCOLS = tuple(HELD_OUT_FRAMES)


def validation_stretch(train: Sequence[int], test: Sequence[int], fraction: float = VAL_FRACTION) -> list[int]:
    """The training frames just before the last stretch of test frames, `fraction` of all frames (at least one
    while two training frames are left, none when fraction is 0); where too few precede it, the first after it."""
    ordered = sorted(int(i) for i in train)
    n_val = min(len(ordered) - 1, max(1, round(fraction * (len(ordered) + len(test))))) if fraction > 0 else 0
    if n_val <= 0:
        return []
    start = float("inf")  # the first frame of the last run of test frames (in frame order)
    if test:
        last = max(test)
        before_last = [i for i in ordered if i < last]
        start = min(i for i in test if not before_last or i > before_last[-1])
    before = [i for i in ordered if i < start]
    after = [i for i in ordered if i > start]
    return sorted(before[max(0, len(before) - n_val):] + after[:max(0, n_val - len(before))])


def with_validation(train: Sequence[int], test: Sequence[int], fraction: float = VAL_FRACTION,
                    test_cameras: Sequence[str] = ()) -> Split:
    """A split whose validation stretch is taken out of `train`."""
    val = validation_stretch(train, test, fraction)
    held = set(val)
    return Split(train=[int(i) for i in train if int(i) not in held], test=[int(i) for i in test],
                 test_cameras=list(test_cameras), val=val)


def held_out_count(protocol: str, n_kept: int, n_source: int, test_fraction: float) -> int:
    """Source frames (tail: kept frames) the protocol holds out at the end of the video."""
    if protocol not in HELD_OUT_FRAMES:
        raise ValueError(f"split protocol must be one of {PROTOCOLS}, got {protocol!r}")
    frames = HELD_OUT_FRAMES[protocol]
    if frames is None:
        return round(test_fraction * n_kept)
    return frames if n_source >= REFERENCE_FRAMES else round(frames * n_source / REFERENCE_FRAMES)


def video_split(frame_ids: Sequence[int], protocol: str = "tail", n_source: int = 0, test_fraction: float = 0.1,
                val_fraction: float = VAL_FRACTION) -> Split:
    """Train, validation and test frames of one video whose kept frames are `frame_ids` (source frame indices) out
    of `n_source` frames. tail: the last test_fraction of the kept frames are test; insta / flashavatar: the kept
    frames among the source's last 350 / 500 (scaled to a clip shorter than 1000 frames), INSTA's and FlashAvatar's
    protocols. At least one frame trains and one is tested where there are two; validation is the stretch before."""
    ids = sorted(int(i) for i in frame_ids)
    n_source = max(n_source, ids[-1] + 1) if ids else 0
    held = held_out_count(protocol, len(ids), n_source, test_fraction)
    n_test = held if protocol == "tail" else sum(1 for i in ids if i >= n_source - held)
    n_test = 0 if len(ids) < 2 else min(len(ids) - 1, max(1, n_test))
    return with_validation(ids[: len(ids) - n_test], ids[len(ids) - n_test:], val_fraction)


def split_json(split: Split) -> dict:
    """split.json's content (the current version)."""
    raw = {"version": SPLIT_VERSION, "train": [int(i) for i in split.train], "val": [int(i) for i in split.val],
           "test": [int(i) for i in split.test]}
    if split.test_cameras:
        raw["test_cameras"] = [str(c) for c in split.test_cameras]
    return raw
