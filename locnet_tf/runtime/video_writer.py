"""Frames written as an H.264 `.mp4` that any browser plays: the annotated videos.

    with VideoWriter("clip_annotated.mp4", source.fps) as writer:
        writer.write(image)  # uint8 RGB [H, W, 3], every frame the size of the first

`VideoWriter` writes annotated frames as H.264 `.mp4` at the source's frame
rate (divided by the stride, so the video lasts as long as the source), to a
temporary name beside the output that replaces it when the video is complete
(`locnet_tf.core.outputs.atomic_path`): a killed run never leaves a broken video
under the output's name, nor destroys the previous one.

It writes through PyAV, as `locnet_tf.runtime.video` reads: PyAV's wheels
bundle libx264 and OpenCV's cannot encode H.264, one of the reasons given
there for PyAV over OpenCV. An FFmpeg without libx264 gets MPEG-4 (`mpeg4`).
"""

import contextlib
import fractions
import sys

import numpy as np

from locnet_tf.core import outputs
from locnet_tf.runtime.video import import_av


class VideoWriter:
    """Writes RGB frames to an H.264 `.mp4` at a fixed frame rate (PyAV, libx264).

    Args:
        path: the output file.
        rate: frames per second (an int, a float or a `fractions.Fraction`).
        crf: int. x264 quality (lower is better; 23 is its default).
        bit_rate: int or None. A target bit rate (bits/s) instead of `crf`.
    """

    def __init__(self, path, rate, crf=23, bit_rate=None):
        av = import_av()
        self.path = str(path)
        # PyAV wants a Fraction (or an int); a float rate (25 / 2) is made one.
        rate = rate if isinstance(rate, (int, fractions.Fraction)) else fractions.Fraction(rate).limit_denominator(1001)
        self.size = None
        self.frames = 0
        # Written under a temporary name beside `path`, which it replaces in `close`; `discard` removes it.
        self._partial = outputs.atomic_path(self.path)
        self.partial_path = str(self._partial.__enter__())
        try:
            self.container = av.open(self.partial_path, mode="w")
        except BaseException:
            self._partial.__exit__(*sys.exc_info())
            raise
        try:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=rate)
            self.stream.pix_fmt = "yuv420p"
            if bit_rate:
                self.stream.bit_rate = int(bit_rate)
            if codec == "libx264":
                self.stream.options = {"preset": "veryfast", **({} if bit_rate else {"crf": str(crf)})}
        except BaseException:
            self.discard()
            raise

    def write(self, image):
        """Appends one uint8 `[H, W, 3]` frame (all frames must share one size)."""
        av = import_av()
        image = np.asarray(image, np.uint8)
        # 4:2:0 video needs even sizes: an odd last row or column is left out.
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
        if self.size is None:
            self.size = image.shape[:2]
            self.stream.height, self.stream.width = self.size
        elif image.shape[:2] != self.size:
            raise ValueError(f"{self.path}: frame size {image.shape[:2]} differs from the first frame's {self.size}.")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self):
        """Flushes the encoder, closes the file and puts it in place under `path`."""
        if self.container is None:
            return
        try:
            if self.size is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException:
            self.discard()
            raise
        self.container = None
        self._partial.__exit__(None, None, None)  # the complete video replaces `path`

    def discard(self):
        """Closes and removes the unfinished video; `path` keeps what it held before."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self.container.close()
        self.container = None
        self._partial.__exit__(RuntimeError, RuntimeError("discarded"), None)  # removes the partial file

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.discard()
