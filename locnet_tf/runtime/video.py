"""Frames from anything a camera or a disk holds: images, folders, globs, videos, cameras, streams.

    for source in expand_sources(["photos/", "clip.mp4", "0", "rtsp://cam/stream"]):
        for frame in source.frames(stride=2):
            frame.image       # uint8 RGB [H, W, 3]
            frame.index, frame.timestamp

A source spec is one of:

| spec | frames |
| --- | --- |
| an image file (JPEG, PNG, GIF, BMP) | one, EXIF orientation applied (`locnet_tf.core.image_files.read_image`) |
| a video file (`.mp4 .avi .mov .mkv .webm .m4v`) | every frame, upright (see below), timestamps from the file |
| a folder | its images and videos, recursively, sorted (folder symlinks followed, each folder once) |
| a glob (`"shots/**/*.jpg"`) | the matching files, sorted (each file once) |
| a camera index (`0`, `1`, ...) | the camera, live (Linux: V4L2 `/dev/videoN`; macOS: AVFoundation) |
| a URL: `rtsp://`, `rtsps://`, `rtmp://`, `http(s)://`, `udp://`, `tcp://` | the stream, live (an IP camera's URL) |

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

`VideoWriter` writes annotated frames as H.264 `.mp4` at the source's frame
rate (divided by the stride, so the video lasts as long as the source), to a
temporary name beside the output that replaces it when the video is complete
(`locnet_tf.core.outputs.atomic_path`): a killed run never leaves a broken video
under the output's name, nor destroys the previous one.

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

**Folders and globs** are walked once per folder, following folder symlinks
(a symlink loop is entered once and not again), and a file reached by two
names (a symlink, a hard link) is predicted once.
"""

import contextlib
import dataclasses
import fnmatch
import fractions
import functools
import glob
import os
import pathlib
import sys
import time

import numpy as np

from locnet_tf.core import image_files as images

from locnet_tf.core import outputs
from locnet_tf.core import geometry

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Seconds to wait for a stream or camera to open, and for each read.
OPEN_TIMEOUT, READ_TIMEOUT = 10.0, 10.0
DEFAULT_RATE = fractions.Fraction(25)  # frames/s assumed when a live source does not say


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


def _import_av():
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
            reformatter = _import_av().video.reformatter.VideoReformatter() if model_input else None
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
            except _import_av().error.FFmpegError as error:
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
        av = _import_av()
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
    interpolation = _import_av().video.reformatter.Interpolation
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
    reformatter = reformatter or _import_av().video.reformatter.VideoReformatter()
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


def classify(spec):
    """The `Source` kind of one spec that names a single thing (not a folder or glob), or None."""
    spec = str(spec)
    if spec.isdigit() or spec.startswith("dshow:"):
        return "camera"
    if spec.lower().startswith(STREAM_SCHEMES):
        return "stream"
    suffix = pathlib.Path(spec).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in images.IMAGE_SUFFIXES:
        return "image"
    return None


def expand_sources(specs, decoder_threads=0):
    """Turns the command line's sources into a list of `Source` (folders and globs expanded).

    Raises:
        FileNotFoundError: a path that does not exist, or a glob matching nothing.
        ValueError: a file that is neither an image nor a video.
    """
    sources = []
    for spec in specs:
        spec = os.fspath(spec)
        kind = classify(spec)
        if kind in ("camera", "stream"):
            sources.append(Source(kind, spec, decoder_threads))
            continue
        if os.path.isdir(spec):
            files = _once(_walk_files(spec))
            _say_unread(files)
            found = [p for p in files if classify(p)]
            if not found:
                raise FileNotFoundError(f"{spec}: no images or videos in this folder.")
            sources.extend(Source(classify(p), str(p), decoder_threads) for p in found)
        elif os.path.isfile(spec):
            if kind is None:
                raise ValueError(
                    f"{spec}: not an image ({', '.join(images.IMAGE_SUFFIXES)}) or a video "
                    f"({', '.join(VIDEO_SUFFIXES)}) by its name."
                )
            sources.append(Source(kind, spec, decoder_threads))
        elif glob.has_magic(spec):
            files = _once(_glob_files(spec))
            _say_unread(files)
            found = [p for p in files if classify(p)]
            if not found:
                raise FileNotFoundError(f"{spec}: no image or video file matches this pattern.")
            sources.extend(Source(classify(p), p, decoder_threads) for p in found)
        else:
            raise FileNotFoundError(f"{spec}: no such file, folder, camera or stream.")
    return sources


def _walk_files(root):
    """Every path under the folder `root` (files, and symlinks to them), following folder symlinks.

    Each folder is entered once (by its device and inode): a symlink loop
    (`d/loop -> d`) or a second link to a folder adds nothing, and the walk ends.
    A folder that cannot be listed is an error naming it, not a hole in the list.
    """
    seen = set()
    found = []

    def refuse(error):
        raise error

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=refuse):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders.sort()
        found.extend(os.path.join(folder, name) for name in names)
    return found


def _glob_files(pattern):
    """The paths matching a glob, as `glob.glob(pattern, recursive=True)` gives them, symlink loops entered once.

    `glob` follows folder symlinks under `**` without end: with one loop each
    file comes back dozens of times, with two the walk never ends. Patterns
    without `**` go to `glob` (they cannot recurse); with it, the folder
    before the first wildcard is walked (`_walk_files`) and each path matched
    part by part: `**` stands for any number of folders, other parts match
    one name as in `glob` (`fnmatch`; names starting with a dot only when the
    part does).
    """
    if "**" not in pattern:
        return glob.glob(pattern)
    parts = pathlib.PurePath(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.path.join(*parts[:first]) if first else os.curdir
    wanted = parts[first:]
    if not os.path.isdir(base):
        return []
    matched = []
    for path in _walk_files(base):
        relative = pathlib.PurePath(os.path.relpath(path, base)).parts
        if _parts_match(relative, wanted):
            matched.append(os.path.join(base, *relative) if first else os.path.join(*relative))
    return matched


def _parts_match(names, patterns):
    """Whether path parts `names` match glob parts `patterns` (`**`: zero or more folders)."""

    @functools.lru_cache(maxsize=None)
    def match(i, j):
        if j == len(patterns):
            return i == len(names)
        if patterns[j] == "**":
            if match(i, j + 1):
                return True
            return i < len(names) and not names[i].startswith(".") and match(i + 1, j)
        if i == len(names):
            return False
        if names[i].startswith(".") and not patterns[j].startswith("."):
            return False
        return fnmatch.fnmatchcase(names[i], patterns[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _once(paths):
    """The files among `paths`, sorted, each file once (two names of one file: the first)."""
    seen = set()
    kept = []
    for path in sorted(paths):
        try:
            info = os.stat(path)
        except OSError:  # a broken symlink: not a file
            continue
        if not os.path.isfile(path) or (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        kept.append(path)
    return kept


def _say_unread(files):
    """Says on stderr which image files of a folder or glob are left out (a format that is not read)."""
    unread = [str(p) for p in files if pathlib.Path(p).suffix.lower() in images.UNSUPPORTED_IMAGE_SUFFIXES]
    if unread:
        shown = ", ".join(unread[:5]) + (f" and {len(unread) - 5} more" if len(unread) > 5 else "")
        print(
            f"warning: {len(unread)} image file{'s' if len(unread) > 1 else ''} not read (a format other than "
            f"JPEG, PNG, GIF or BMP; convert to predict them): {shown}",
            file=sys.stderr,
        )


class VideoWriter:
    """Writes RGB frames to an H.264 `.mp4` at a fixed frame rate (PyAV, libx264).

    Args:
        path: the output file.
        rate: frames per second (an int, a float or a `fractions.Fraction`).
        crf: int. x264 quality (lower is better; 23 is its default).
        bit_rate: int or None. A target bit rate (bits/s) instead of `crf`.
    """

    def __init__(self, path, rate, crf=23, bit_rate=None):
        av = _import_av()
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
        av = _import_av()
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


def predict_frames(predictor, source, *, stride=1, smooth=None, smoothing=None, exact_resize=False):
    """Predicts every `stride`-th frame of one source; yields `(Frame, Prediction)`.

    Video frames of a `.tflite` model are converted and resized by FFmpeg's
    scaler in one step (`scale_to_model`, about 6x less time than the RGB
    conversion and `resize.resize`; within the tolerance of
    tests/test_video_fast.py of the exact path); `exact_resize=True` converts
    each frame to RGB and resizes it bit for bit as training does, as other
    models' frames always are.

    Args:
        predictor: anything with `predict(image)`, `presence_threshold` and
            `class_names` (`locnet_tf.evaluate.predictor.Predictor`,
            `locnet_tf.runtime.TFLitePredictor`).
        source: a `Source`, or one spec naming a single image, video, camera or stream.
        stride: int. Predict every `stride`-th frame.
        smooth: bool or None. Steady the answers over time
            (`locnet_tf.runtime.smoothing.Smoother`); None: on for videos, cameras and
            streams, off for still images.
        smoothing: a `locnet_tf.runtime.smoothing.SmoothingConfig`, or None for the defaults.
        exact_resize: bool. The exact path (see above) instead of FFmpeg's scaler.
    """
    from locnet_tf.runtime import smoothing as smoothing_lib

    if not isinstance(source, Source):
        kind = classify(source)
        if kind is None:
            raise ValueError(f"{source}: not an image, video, camera or stream.")
        source = Source(kind, os.fspath(source))
    if smooth is None:
        smooth = source.kind != "image"
    smoother = (
        smoothing_lib.Smoother(
            predictor.presence_threshold, predictor.class_names, smoothing or smoothing_lib.SmoothingConfig()
        )
        if smooth
        else None
    )
    fast = None if exact_resize else _scaled_predictor(predictor)
    model_input = (fast.image_size, fast.resize) if fast is not None else None
    # Closed when this generator is (its caller stops early): the source's container with it.
    with contextlib.closing(source.frames(stride, model_input=model_input)) as frames:
        for frame in frames:
            if frame.model_input is not None:
                prediction = fast.predict_resized(frame.model_input, frame.height, frame.width)
            else:
                prediction = predictor.predict(frame.image)
            if smoother is not None:
                prediction = smoother.update(prediction, frame.timestamp or 0.0)
            yield frame, prediction


def _scaled_predictor(predictor):
    """The predictor that takes model inputs made by the scaler (`predict_resized`): a
    `runtime.TFLitePredictor`, or the one inside an `evaluate.Predictor` of a `.tflite`; else None."""
    for candidate in (predictor, getattr(predictor, "lite", None)):
        if candidate is not None and hasattr(candidate, "predict_resized"):
            return candidate
    return None
