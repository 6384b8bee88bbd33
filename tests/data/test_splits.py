"""Which frames train, which choose the defaults (validation) and which are reported (test)."""

import json

import pytest

from pav.data.collection import Collection, CollectionError
from pav.data.collection.splits import validation_stretch, video_split


def test_tail_holds_out_the_last_tenth_and_validates_on_the_frame_before():
    split = video_split(list(range(20)))
    assert (split.train, split.val, split.test) == (list(range(17)), [17], [18, 19])
    two = video_split([3, 9])
    assert (two.train, two.val, two.test) == ([3], [], [9])  # too short to validate: one trains, one tests


def test_insta_holds_out_the_last_350_source_frames_scaled_to_a_short_clip():
    long = video_split(list(range(0, 2000, 4)), "insta", n_source=2000)  # every 4th of 2000 frames kept
    assert long.test == list(range(1652, 2000, 4))  # the kept frames among the last 350
    assert long.val == list(range(1552, 1652, 4)) and max(long.train) < min(long.val)
    short = video_split(list(range(200)), "insta", n_source=200)  # 35 % of a clip under 1000 frames
    assert short.test == list(range(130, 200)) and short.val == list(range(120, 130))
    flash = video_split(list(range(200)), "flashavatar", n_source=200)
    assert flash.test == list(range(100, 200)) and flash.train == list(range(90))
    with pytest.raises(ValueError, match="split protocol must be one of"):
        video_split(list(range(10)), "random")


def test_validation_lies_before_the_last_test_stretch():
    test = list(range(45, 55)) + list(range(90, 100))  # the synthetic generator's two test segments
    train = [f for f in range(100) if f not in test]
    assert validation_stretch(train, test) == [85, 86, 87, 88, 89]
    assert validation_stretch(list(range(5, 20)), list(range(5))) == [5]  # nothing before the test: just after
    assert validation_stretch(train, test, fraction=0.0) == []


def test_a_split_without_version_validates_on_its_last_train_frames(tiny_collection, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(tiny_collection, root)
    name = Collection.open(root).appearance_names[0]
    path = root / name / "split.json"
    written = json.loads(path.read_text())
    train, test = written["train"] + written["val"], written["test"]
    path.write_text(json.dumps({"train": train, "test": test}))  # a collection written before validation existed
    split = Collection.open(root)[name].split
    assert split.val == validation_stretch(train, test) and split.val
    assert set(split.train) == set(train) - set(split.val) and split.test == test
    path.write_text(json.dumps({"version": 2, "train": train, "val": [train[0]], "test": test}))
    with pytest.raises(CollectionError, match=f"{name}/split.json: fields 'train' and 'val' overlap at frame ids "
                                              f"{train[0]}"):
        Collection.open(root)
    path.write_text(json.dumps({"train": train, "val": [], "test": test}))
    with pytest.raises(CollectionError, match="unknown field 'val'"):
        Collection.open(root)
