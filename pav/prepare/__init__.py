"""In-the-wild videos -> frames, face crops, alpha mattes and face-mesh landmarks.

`python -m pav.prepare videos=DIR out=DIR [frames_per_video=500 size=512]`: every video file or
folder of images directly inside DIR becomes one appearance of a collection (without FLAME fits;
`python -m pav.track` adds them). See pipeline.py for the passes and write.py for the files.
"""

from .pipeline import PrepareConfig, PrepareError, prepare

__all__ = ["PrepareConfig", "PrepareError", "prepare"]
