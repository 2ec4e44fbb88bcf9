"""Frames from one source: an image file, a video file, a camera or a stream.

    source = Source("video", "clip.mp4")
    for frame in source.frames(stride=2):
        frame.image       # uint8 RGB [H, W, 3]
        frame.index, frame.timestamp

A `Source` is one of four kinds:

| kind | spec | frames |
| --- | --- | --- |
| `"image"` | an image file (JPEG, PNG, GIF, BMP) | one, EXIF orientation applied (`core.image_files.read_image`) |
| `"video"` | a video file | every frame, upright (see below), timestamps from the file |
| `"camera"` | a camera index (`0`, `1`, ...) | the camera, live (Linux: V4L2 `/dev/videoN`; macOS: AVFoundation) |
| `"stream"` | a URL | the stream, live (an IP camera's URL) |

This module only reads. The command line's specs (folders and globs too)
become `Source`s in `locnet_tf.runtime.source_specs`; annotated frames are
written by `locnet_tf.runtime.video_writer`; `locnet_tf.runtime.frame_predictions`
predicts a source's frames.

Video goes through PyAV (FFmpeg's libraries, wheels for Linux x86/ARM, macOS
and Windows with FFmpeg inside). Chosen over OpenCV (`opencv-python-headless`)
because it also *writes* H.264 (its wheels bundle libx264, OpenCV's cannot
encode H.264), so an annotated video plays in any browser and the benchmarks
can make their H.264 test clip; it gives each frame's exact timestamp (the
stream's presentation time, OpenCV gives a rounded position); its decoder
threads are settable; and it is FFmpeg alone, not a computer-vision library
we would use one function of. Camera indices are FFmpeg devices (V4L2,
AVFoundation); on Windows give a DirectShow name instead (`video=NAME`, see
FFmpeg's dshow documentation) as `dshow:video=NAME`.

**Upright frames.** A phone stores a portrait video as landscape frames plus a
display matrix ("rotate 90 degrees to show"), as it stores a photo with an
EXIF orientation. Frames are turned the way FFmpeg's player turns them
(`upright`), so predictions, boxes and annotated videos are in the
orientation a viewer sees; the annotated video is written upright, without a
matrix.

**Cut files.** A video cut short (a copy interrupted, a full disk) decodes up
to the cut; FFmpeg's threaded decoder drops the error of the last, partial
frame. So the frames read are counted against the packets the file holds
and the frames its header declares: a file that ends early gets one warning
line on stderr naming it and the frames read of those declared. A warning,
not an error: the frames before the cut are whole (every player shows them),
their predictions are right and already printed, and the annotated video of
them is kept; a file with no readable frame is an error.
"""

import dataclasses
import fractions
import functools
import pathlib
import sys
import time

import numpy as np

from locnet_tf.core import geometry
from locnet_tf.core import image_files as images
from locnet_tf.core import moved

# Seconds to wait for a stream or camera to open, and for each read.
OPEN_TIMEOUT, READ_TIMEOUT = 10.0, 10.0
DEFAULT_RATE = fractions.Fraction(25)  # frames/s assumed when a live source does not say

# Names that lived here until this module was split by concern (examples/video_int8.py and
# docs/architecture.md named them): each warns with its new place until 0.4.0.
__getattr__ = moved.names_getattr(
    __name__,
    {
        "VideoWriter": "locnet_tf.runtime.video_writer",
        "predict_frames": "locnet_tf.runtime.frame_predictions",
        "expand_sources": "locnet_tf.runtime.source_specs",
    },
)


class Frame:
    """One frame of a source.

    source: str. The file, camera or URL it came from.
    index: int. Its position in the source (0-based, counting every frame,
        also those a stride skips).
    timestamp: float or None. Seconds from the start of the source (None for
        a still image).
    image: uint8 `[H, W, 3]` RGB, upright. For a video frame it is converted
        from the decoded picture when first asked for (a run that only
        predicts, with the scaler's model input, never needs it).
    height, width: the size of `image` (known without converting it).
    model_input: uint8 `[S, S, 3]` made by FFmpeg's scaler (`scale_to_model`)
        when `Source.frames` was given a model size, else None.
    """

    def __init__(self, source, index, timestamp, image=None, *, decoded=None, model_input=None):
        self.source, self.index, self.timestamp = source, index, timestamp
        self._image, self._decoded, self.model_input = image, decoded, model_input
        if image is not None:
            self.height, self.width = image.shape[:2]
        else:
            self.height, self.width = _upright_size(decoded)

    @property
    def image(self):
        if self._image is None:
            self._image = upright(self._decoded.to_ndarray(format="rgb24"), self._decoded, self.source)
            self._decoded = None
        return self._image

    def __repr__(self):
        size = f"{self.height}x{self.width}"
        return f"Frame(source={self.source!r}, index={self.index}, timestamp={self.timestamp}, size={size})"


def import_av():
    """PyAV, imported on first use (still images never load FFmpeg's libraries); `video_writer` writes with it."""
    try:
        import av
    except ImportError:
        raise ImportError("Reading video needs PyAV (the base install brings it): pip install av") from None
    return av


@dataclasses.dataclass
class Source:
    """One thing to read frames from.

    kind: `"image"`, `"video"`, `"camera"` or `"stream"`.
    spec: str. The path, camera index or URL.
    """

    kind: str
    spec: str
    decoder_threads: int = 0  # FFmpeg decoder threads; 0 lets FFmpeg choose
    fps = None  # set by `frames`
    total = None
    frames_read = None  # set when `frames` reaches the end of a video file
    truncated = False  # the file ended before the frames it declares (a warning said so)

    @property
    def live(self):
        """A camera or a stream: no end, no frame count known."""
        return self.kind in ("camera", "stream")

    @property
    def name(self):
        """A file-name stem for outputs: the file's stem, `camera0`, or the URL's last part."""
        if self.kind == "camera":
            return "camera" + "".join(c for c in self.spec if c.isalnum())
        if self.kind == "stream":
            tail = self.spec.split("://", 1)[1].rstrip("/").replace(":", "_")
            return "".join(c if c.isalnum() or c in "-_." else "_" for c in tail)[-60:] or "stream"
        return pathlib.Path(self.spec).stem

    def frames(self, stride=1, model_input=None):
        """Yields the source's `Frame`s (every `stride`-th one, starting with the first).

        Once the source is open (by the first frame), `self.fps` holds the rate
        of the frames yielded (the source's rate / `stride`) and `self.total`
        how many there will be, when known (else None).

        `model_input`: `(image_size, method)` (method `"stretch"` or
        `"letterbox"`) to have each video frame's `model_input` made by
        FFmpeg's scaler (`scale_to_model`); still images get none (their
        predictor resizes them exactly).
        """
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}.")
        if self.kind == "image":
            self.fps, self.total = None, 1
            yield Frame(self.spec, 0, None, images.read_image(self.spec))
            return
        container = self.open()
        try:
            self.fps = fractions.Fraction(self.rate(container)) / stride  # exact: PyAV's writer takes a Fraction
            self.total = self.count(container, stride)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = self.decoder_threads
            # One scaler for the whole source: FFmpeg keeps its filters between frames of one size.
            reformatter = import_av().video.reformatter.VideoReformatter() if model_input else None
            declared = 0 if self.live else (stream.frames or 0)
            start = time.monotonic()
            index = -1
            packets = corrupt = 0
            problem = None
            try:
                # Demuxed here, not by container.decode, to count the packets (and damaged ones) the file holds.
                for packet in container.demux(stream):
                    if packet.size or packet.dts is not None:  # not the empty packet that flushes the decoder
                        packets += 1
                        corrupt += bool(packet.is_corrupt)
                    for frame in stream.decode(packet):
                        index += 1
                        if index % stride:
                            continue
                        timestamp = frame.time
                        if timestamp is None:
                            timestamp = time.monotonic() - start if self.live else index / float(self.rate(container))
                        small = scale_to_model(frame, *model_input, reformatter, self.spec) if model_input else None
                        yield Frame(self.spec, index, float(timestamp), decoded=frame, model_input=small)
            except import_av().error.FFmpegError as error:
                if index < 0:
                    raise ValueError(f"{self.spec}: cannot read frame {index + 1}: {error}") from None
                if self.live:
                    # A live stream that stops (a camera unplugged, a server closing) ends the source.
                    print(f"{self.spec}: the stream ended after {index + 1} frames ({error})", file=sys.stderr)
                    return
                problem = str(error)
            if not self.live:
                if index < 0:
                    raise ValueError(
                        f"{self.spec}: no frame could be read (of {declared} declared): cut short or damaged."
                    )
                self.frames_read = index + 1
                if problem or corrupt or packets < declared:
                    self.truncated = True
                    print(f"warning: {_cut_message(self.spec, index + 1, declared, problem)}", file=sys.stderr)
        finally:
            container.close()

    def open(self):
        """The PyAV input container (raises ValueError naming the source if it cannot be opened)."""
        av = import_av()
        kwargs = {}
        if self.kind == "camera":
            kwargs = _camera(self.spec)
        elif self.kind == "stream":
            kwargs["timeout"] = (OPEN_TIMEOUT, READ_TIMEOUT)
            if self.spec.startswith(("rtsp://", "rtsps://")):
                kwargs["options"] = {"rtsp_transport": "tcp"}  # no lost UDP packets, works through NAT
        try:
            container = av.open(kwargs.pop("file", self.spec), **kwargs)
        except (av.error.FFmpegError, OSError) as error:
            raise ValueError(f"{self.spec}: cannot open it as a {self.kind}: {error}") from None
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.spec}: has no video stream.")
        return container

    def rate(self, container):
        """Frames per second of an opened source (its declared rate; 25 when unknown)."""
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return rate if rate else DEFAULT_RATE

    def count(self, container, stride=1):
        """Frames `frames(stride)` will yield, when the file says (None for live or unknown)."""
        total = container.streams.video[0].frames
        return -(-total // stride) if total and not self.live else None


def _cut_message(spec, read, declared, problem):
    """The warning for a video file that ends before its end: which file, frames read and declared."""
    what = f"{read} of the {declared} frames it declares" if declared else f"only {read} frames"
    why = f" ({problem})" if problem else ""
    return f"{spec}: the file ends early (cut short or damaged): {what} could be read{why}."


def display_matrix(frame):
    """A decoded frame's display matrix as 9 int32 (16.16 fixed point for the first two rows), or None."""
    side_data = frame.side_data.get("DISPLAYMATRIX")
    if side_data is None:
        return None
    return np.frombuffer(bytes(side_data), np.int32)[:9]


@functools.lru_cache(maxsize=None)
def _warn_odd_angle(spec, angle):
    print(
        f"warning: {spec}: its display matrix turns frames by {angle} degrees; frames are read unturned.",
        file=sys.stderr,
    )


def upright(image, frame, spec=""):
    """`image` (a decoded `frame` as `[H, W, 3]`) turned the way a player shows it, by its display matrix.

    FFmpeg's own rule (fftools, `-autorotate`): the matrix's angle and, for
    the quarter turns, the sign of its entries say which of the eight
    orientations to show (a turn, possibly mirrored). `frame.rotation` is the
    matrix's counter-clockwise angle; a phone's portrait video says -90
    (turn 90 degrees clockwise to show).
    """
    matrix = display_matrix(frame)
    if matrix is None:
        return image
    theta = round(-frame.rotation) % 360  # clockwise degrees, as fftools' get_rotation
    if theta == 90:
        image = image.transpose(1, 0, 2) if matrix[3] > 0 else np.rot90(image, -1)  # cclock_flip / clock
    elif theta == 180:
        image = image[:, ::-1] if matrix[0] < 0 else image
        image = image[::-1] if matrix[4] < 0 else image
    elif theta == 270:
        image = np.rot90(image, -1)[::-1] if matrix[3] < 0 else np.rot90(image, 1)  # clock_flip / cclock
    elif theta == 0:
        image = image[::-1] if matrix[4] < 0 else image
    else:  # not a quarter turn: FFmpeg rotates with a filter; too rare to resample for
        _warn_odd_angle(spec, theta)
    return np.ascontiguousarray(image)


def _upright_size(frame):
    """`(height, width)` of a decoded frame as `upright` turns it."""
    matrix = display_matrix(frame)
    if matrix is not None and round(-frame.rotation) % 360 in (90, 270):
        return frame.width, frame.height
    return frame.height, frame.width


# FFmpeg scaler (swscale) flags of the fast path: bilinear, which when shrinking widens its triangle
# by the scale as TensorFlow's antialiased resize does (on the same RGB image the two differ by at
# most 4 grey levels, 0.02 on average, measured); accurate rounding; chroma interpolated, not
# repeated, on input and output, so the colour conversion is BT.601 without the unscaled
# converter's bias of about -1 grey level (see docs/benchmarks.md).
FAST_RESIZE_FLAGS = ("BILINEAR", "ACCURATE_RND", "FULL_CHR_H_INT", "FULL_CHR_H_INP")


@functools.lru_cache(maxsize=1)
def _fast_flags():
    interpolation = import_av().video.reformatter.Interpolation
    return functools.reduce(lambda a, b: a | b, (getattr(interpolation, name) for name in FAST_RESIZE_FLAGS))


def scale_to_model(frame, image_size, method="stretch", reformatter=None, spec="", pad_value=0):
    """A decoded video frame as the model input `[S, S, 3]` uint8 RGB, converted and resized by FFmpeg in one step.

    The fast twin of `resize.resize(upright(frame.to_ndarray("rgb24")), image_size, method)`: the
    YUV frame goes through swscale once to the model's size in RGB (`FAST_RESIZE_FLAGS`), is
    turned upright, and for `"letterbox"` padded with `pad_value` where `resize.resize` puts it
    (`geometry.letterbox_geometry` of the upright frame). Not bit-exact: tests/test_video_fast.py
    and docs/benchmarks.md give the difference and its effect on predictions.

    Args:
        frame: a PyAV `VideoFrame`.
        image_size: int, the model's square input size.
        method: `"stretch"` or `"letterbox"`.
        reformatter: a `av.video.reformatter.VideoReformatter` to reuse (keeps swscale's
            filters between frames), or None for a new one.
    """
    if method not in ("stretch", "letterbox"):
        raise ValueError(f"resize method must be 'stretch' or 'letterbox', got {method!r}.")
    size = int(image_size)
    height, width = _upright_size(frame)
    if method == "stretch":
        new_h, new_w, top, left = size, size, 0, 0
    else:
        new_h, new_w, top, left = geometry.letterbox_geometry(height, width, size, size)
    turned = (height, width) != (frame.height, frame.width)
    scaled_w, scaled_h = (new_h, new_w) if turned else (new_w, new_h)  # the stored (unturned) picture's size
    reformatter = reformatter or import_av().video.reformatter.VideoReformatter()
    small = reformatter.reformat(frame, scaled_w, scaled_h, "rgb24", interpolation=_fast_flags()).to_ndarray()
    small = upright(small, frame, spec)
    if method == "stretch":
        return small
    out = np.full((size, size, 3), pad_value, np.uint8)
    out[top : top + new_h, left : left + new_w] = small
    return out


def _camera(spec):
    # FFmpeg's camera devices by platform (PyAV's wheels include libavdevice).
    if spec.startswith("dshow:"):
        return {"file": spec[len("dshow:") :], "format": "dshow"}
    if sys.platform.startswith("linux"):
        return {"file": f"/dev/video{int(spec)}", "format": "v4l2"}
    if sys.platform == "darwin":
        return {"file": str(int(spec)), "format": "avfoundation", "options": {"framerate": "30"}}
    raise ValueError(
        f"camera {spec}: camera indices work on Linux (V4L2) and macOS (AVFoundation); on Windows "
        "give the DirectShow device as dshow:video=NAME."
    )
