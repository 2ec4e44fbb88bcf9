"""Try a model in a browser and serve it over HTTP: `python -m locnet_tf.serve MODEL`.

    python -m locnet_tf.serve export/demo/model_int8.tflite            # http://127.0.0.1:8000
    python -m locnet_tf.serve model.tflite --port 8080 --workers 2

The page (`/`): drop or pick a photo and see the box, class and score drawn on
it; pick a video file and watch it play with the box tracked; use the webcam
with the box drawn live and the frames/s shown; a threshold slider; the
model's card. Plain HTML, JavaScript and CSS served from the package
(`locnet_tf/serve_static/`): no build step, nothing loaded from the internet.

The JSON API on the same app:

- `POST /predict` with an image file (multipart field `file`, or the raw bytes
  as the body) -> the prediction: the fields of `python -m locnet_tf.predict`'s
  JSON lines;
- `GET /model` -> the model's card: classes, input size, threshold, resize,
  where it came from (the `.tflite`'s embedded metadata);
- `GET /healthz` -> `{"status": "ok", ...}`.

`POST /predict` takes query parameters `threshold` (0..1, default the
model's), `name` (names a raw upload in answers and errors) and, for the
frames of a video or a camera, `session` (any short id, one per stream) and
`timestamp` (seconds): the frames of one session are steadied over time by
the video path's own `locnet_tf.runtime.smoothing.Smoother` (One Euro box filter,
presence hysteresis), kept on the server per session, so the page tracks a
box exactly as `predict` does on a video file, with no JavaScript port to
drift from it. A timestamp that goes back (a video seeked or restarted)
starts the session afresh; the least recently used of more than
`MAX_SESSIONS` sessions is forgotten.

A bad upload (not an image, truncated, corrupt, over `--max-upload-mb`, over
the pixel limit) gets the command line's one-line message (`cli.user_message`:
the upload's name, then the problem) as `{"error": ...}` with a 4xx status
(413 for too large, 400 otherwise); the server goes on serving.

**Why Starlette and uvicorn.** Starlette is a small ASGI toolkit (a few
thousand lines, one dependency, anyio), maintained by Encode and the base
FastAPI is built on, so it is as well kept as Python web frameworks get. It
has exactly what this needs and nothing more: routes, static files, multipart
forms (python-multipart), a thread pool for blocking work, and a test client
(httpx) that runs the app in-process. uvicorn is its standard server. Flask
would do too, but its development server is not for serving and a WSGI server
gives one thread per request with no test client of the same API; FastAPI
would add pydantic for three routes. Neither needs TensorFlow: the app runs
wherever `pip install locnet_tf` runs.

**Concurrency.** A LiteRT interpreter must not run in two threads at once,
and one interpreter runs one image at a time. The app keeps a pool of
`--workers` interpreters (each a `runtime.TFLitePredictor` with `--threads`
LiteRT threads); a request decodes its upload in a worker thread, takes an
interpreter from the pool (waiting while all are busy), predicts, and puts
it back. docs/deploy.md has the load test's figures
(`benchmarks/serve_load.py`).

A `.keras` file or SavedModel folder is served too where TensorFlow is
installed (through `evaluate.Predictor`, one at a time).
"""

import argparse
import collections
import contextlib
import importlib.util
import math
import os
import pathlib
import queue
import sys
import threading

from locnet_tf.core import cli, errors
from locnet_tf.core import image_files as images
from locnet_tf.evaluate import predictor as inference
from locnet_tf.runtime import tflite as runtime

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_MAX_UPLOAD_MB = 25.0  # a 100 MP JPEG is about 25 MB; the pixel limit (images.max_pixels) comes next
MAX_SESSIONS = 64  # video / camera streams steadied at once
STATIC = pathlib.Path(__file__).with_name("serve_static")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NO_FILE = 'no image in the form: send it as the file field "file"'
NO_TIMESTAMP = "a session's frames need their timestamp (seconds)"


class UploadError(ValueError):
    """A request the server refuses (`status`: its HTTP status); the message is the one line shown."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class InterpreterPool:
    """Predictors of which each is used by one thread at a time.

    Args:
        factory: callable returning a new predictor.
        size: int. How many.
    """

    def __init__(self, factory, size):
        self.size = int(size)
        self.predictors = [factory() for _ in range(self.size)]
        self._free = queue.SimpleQueue()
        for predictor in self.predictors:
            self._free.put(predictor)

    @contextlib.contextmanager
    def take(self):
        """The next free predictor, for the `with` block's duration (waits while all are busy)."""
        predictor = self._free.get()
        try:
            yield predictor
        finally:
            self._free.put(predictor)


class _Session:
    def __init__(self, smoother):
        self.smoother = smoother
        self.lock = threading.Lock()
        self.frames = 0
        self.last_time = None


class Service:
    """The model behind the app: loads it, describes it, predicts uploads.

    Args:
        model_path: a `.tflite` file (or `.keras` / SavedModel with TensorFlow).
        workers: int. Interpreters in the pool (requests predicted at once).
        num_threads: int or None. LiteRT threads per interpreter.
        max_upload_bytes: int. Larger uploads are refused (413).
        presence_threshold: float or None. The default threshold (None: the model's).
    """

    def __init__(self, model_path, *, workers=1, num_threads=None, max_upload_bytes=None, presence_threshold=None):
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}.")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"--threads must be at least 1, got {num_threads}.")
        self.model_path = pathlib.Path(model_path)
        self.kind = inference.model_kind(self.model_path)
        if self.kind == "tflite":

            def factory():
                return runtime.TFLitePredictor(
                    self.model_path, num_threads=num_threads, presence_threshold=presence_threshold
                )

        else:  # TensorFlow's own thread pool runs one model; several copies would only compete
            if importlib.util.find_spec("tensorflow") is None:
                raise ValueError(
                    f"{self.model_path}: serving a {self.kind} model needs TensorFlow, which the base install leaves "
                    'out: serve its .tflite export, or install the train extra (in the clone: pip install ".[train]")'
                )
            workers = 1

            def factory():
                return inference.Predictor(self.model_path, presence_threshold=presence_threshold)

        self.pool = InterpreterPool(factory, workers)
        self.num_threads = num_threads
        first = self.pool.predictors[0]
        self.class_names = list(first.class_names)
        self.presence_threshold = float(first.presence_threshold)
        self.max_upload_bytes = int(max_upload_bytes or DEFAULT_MAX_UPLOAD_MB * 1e6)
        self._sessions = collections.OrderedDict()
        self._sessions_lock = threading.Lock()

    def card(self):
        """What the model says about itself (its embedded metadata), for `GET /model` and the page."""
        first = self.pool.predictors[0]
        metadata = dict(getattr(first, "metadata", None) or {})
        return {
            "file": self.model_path.name,
            "kind": self.kind,
            "classes": self.class_names,
            "input_size": int(first.image_size),
            "input_dtype": (metadata.get("input") or {}).get("dtype"),
            "presence_threshold": self.presence_threshold,
            "resize": first.resize,
            "quantization": metadata.get("quantization"),
            "model_name": metadata.get("model_name"),
            "source_sha256": metadata.get("source_sha256"),
            "metadata_source": getattr(first, "metadata_source", None),
            "workers": self.pool.size,
            "threads_per_worker": self.num_threads,
            "max_upload_bytes": self.max_upload_bytes,
        }

    def predict(self, data, name, *, threshold=None, session=None, timestamp=None):
        """One upload's bytes -> the prediction row (the fields of `predict`'s JSON lines).

        Raises:
            DataError / UploadError: a bad image or request (the message names `name`).
        """
        if len(data) > self.max_upload_bytes:
            raise self.too_large(name, len(data))
        if session is not None and timestamp is None:
            raise UploadError(NO_TIMESTAMP)
        image = images.decode_image(data, name)
        threshold = self.presence_threshold if threshold is None else threshold
        with self.pool.take() as predictor:
            prediction = predictor.predict(image)
        if session is None:
            prediction = _with_threshold(prediction, threshold)
            return {"image": name, "source": name, "frame": 0, "timestamp": None, **prediction.to_dict()}
        state = self._session(session, threshold)
        with state.lock:  # one stream's frames in order, one at a time
            if state.last_time is not None and timestamp < state.last_time:
                state.smoother.reset()  # the video went back: a new pass over it
            state.last_time = timestamp
            steady = state.smoother.update(prediction, timestamp)
            frame = state.frames
            state.frames += 1
        return {"source": session, "frame": frame, "timestamp": timestamp, **steady.to_dict()}

    def too_large(self, name, size):
        return UploadError(
            f"{name}: upload is too large: {size / 1e6:.1f} MB, over the limit of {self.max_upload_bytes / 1e6:g} MB "
            "(--max-upload-mb changes it)",
            status=413,
        )

    def _session(self, key, threshold):
        from locnet_tf.runtime import smoothing

        with self._sessions_lock:
            state = self._sessions.get(key)
            if state is None or state.smoother.threshold != threshold:  # a new stream, or the slider moved
                state = _Session(smoothing.Smoother(threshold, self.class_names))
                self._sessions[key] = state
            self._sessions.move_to_end(key)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return state


def _with_threshold(prediction, threshold):
    import dataclasses

    return dataclasses.replace(prediction, present=prediction.p_c >= threshold)


# ----------------------------------------------------------------------------
# The app.


def _error_response(error):
    from starlette.responses import JSONResponse

    message = cli.user_message(error) or f"{type(error).__name__}: {error}"
    status = getattr(error, "status", None)
    if status is None:
        status = 413 if isinstance(error, errors.ImageError) and error.problem.startswith("image is too large") else 400
    return JSONResponse({"error": message.splitlines()[0]}, status_code=status)


def _query_float(request, key, low=-math.inf, high=math.inf):
    text = request.query_params.get(key)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (low <= value <= high and math.isfinite(value)):  # also refuses nan and inf
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) and math.isfinite(high) else ""
        raise UploadError(f"{key} must be a number{bounds}, got {text!r}")
    return value


async def _read_body(request, service, name):
    """The request's body, refused (413) as soon as it passes the upload limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > service.max_upload_bytes + 1_000_000:
        raise service.too_large(name, int(declared))  # multipart framing aside, it cannot fit
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > service.max_upload_bytes + 1_000_000:
            raise service.too_large(name, size)
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request, service):
    """`(bytes, name)` of the uploaded image: multipart field `file` (or the only file), else the raw body."""
    from starlette.requests import Request

    name = request.query_params.get("name") or "upload"
    body = await _read_body(request, service, name)
    # Anything but a multipart form is the file itself, whatever it says it is: `curl --data-binary` and
    # urllib call raw bytes "application/x-www-form-urlencoded".
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body, name

    async def replay():  # the form parser reads the body we already hold
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10, max_part_size=len(body) + 1)
    except Exception as error:  # starlette's MultiPartException / HTTPException: a malformed form
        raise UploadError(f"{name}: not a readable multipart form ({getattr(error, 'detail', error)})") from None
    try:
        files = [v for v in form.values() if hasattr(v, "read")]
        upload = form.get("file") if hasattr(form.get("file"), "read") else (files[0] if len(files) == 1 else None)
        if upload is None:
            raise UploadError(NO_FILE)
        name = upload.filename or name
        return await upload.read(), name
    finally:
        await form.close()


def build_app(service):
    """The Starlette app: the page, its static files, and the JSON API over `service`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def model(request):
        return JSONResponse(service.card())

    async def healthz(request):
        return JSONResponse({"status": "ok", "model": service.model_path.name, "workers": service.pool.size})

    async def predict(request):
        try:
            threshold = _query_float(request, "threshold", 0.0, 1.0)
            session = request.query_params.get("session") or None
            if session is not None and len(session) > 100:
                raise UploadError("session must be an id of at most 100 characters")
            timestamp = _query_float(request, "timestamp", 0.0)
            if session is not None and timestamp is None:
                raise UploadError(NO_TIMESTAMP)
            data, name = await _upload(request, service)
            row = await run_in_threadpool(
                service.predict, data, name, threshold=threshold, session=session, timestamp=timestamp
            )
        except Exception as error:  # a user's mistake answers 4xx; anything else is a bug: 500, traceback logged
            if cli.user_message(error) is None:
                raise
            return _error_response(error)
        return JSONResponse(row)

    routes = [
        Route("/", index),
        Route("/model", model),
        Route("/healthz", healthz),
        Route("/predict", predict, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


# ----------------------------------------------------------------------------
# Command line.


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m locnet_tf.serve",
        description="A web page (photo, video file, webcam) and a JSON API (POST /predict, GET /model, "
        "GET /healthz) for a .tflite model, on the TensorFlow-free runtime.",
    )
    parser.add_argument("model", help="a .tflite file (a .keras file or SavedModel folder needs TensorFlow)")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this "
        "machine only; 0.0.0.0 opens it to the network, with no authentication)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="interpreters in the pool: requests predicted at once (default: the CPUs, at most 4)",
    )
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads per interpreter (default 1)")
    parser.add_argument("--threshold", type=float, help="default presence threshold (default: the model's)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help=f"default {DEFAULT_MAX_UPLOAD_MB:g}"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}.")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}.")
    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be above 0, got {args.max_upload_mb}.")
    try:
        import uvicorn
    except ImportError:
        raise ValueError(
            "python -m locnet_tf.serve needs starlette and uvicorn (the base install brings them): "
            "pip install starlette uvicorn python-multipart"
        ) from None
    service = Service(
        args.model,
        workers=args.workers,
        num_threads=args.threads,
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        presence_threshold=args.threshold,
    )
    if args.host not in LOOPBACK:
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use the model "
            "(there is no authentication).",
            file=sys.stderr,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {args.model} at http://{host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(build_app(service), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
