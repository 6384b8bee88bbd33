"""`python -m pav.evaluate.heldout`: one video per appearance of its held-out frames, render beside truth."""

import imageio_ffmpeg

from pav.data.collection import Collection
from pav.evaluate.heldout import main


def test_one_video_per_appearance_with_every_held_out_frame(tiny_avatar, tmp_path):
    main([f"ckpt={tiny_avatar.ckpt}", f"out={tmp_path}", "size=16", "device=cpu"])
    collection = Collection.open(tiny_avatar.collection, verify_images="none")
    for name in collection.appearance_names:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / f"{name}.mp4"))
        assert frames == len(collection.appearance(name).split.test)
