"""Load test of `python -m locnet_tf.serve`: requests/s and latency of `POST /predict` on 127.0.0.1.

    python benchmarks/serve_load.py export/demo/model_int8.tflite
    python benchmarks/serve_load.py model.tflite --workers 1,2 --concurrency 1,2,4 --requests 400
    python benchmarks/serve_load.py                 # the default preset's network, trained briefly (needs TF)

For each `--workers` (interpreters in the server's pool, one LiteRT thread
each unless `--threads`) the server is started as the command starts it, on
127.0.0.1 and a free port (nothing else is ever contacted); then for each
`--concurrency` that many client threads, each with its own keep-alive
connection (`http.client`), post the same JPEG (`--image`, default a
generated 640x480 photo-like picture) as raw bytes until `--requests`
answers are in or `--time-limit` seconds have passed, whichever comes first
(after `--warmup` requests that are not counted). Every answer must be 200
with the prediction; a failed request is counted and reported.

Prints one JSON document: the CPU (`lscpu`), the model, and per setting
requests/s and latency percentiles p50/p90/p99 in milliseconds. The client
runs on the same machine and takes CPU from the server: on a 2-core machine
the figures are a floor.
"""

import argparse
import concurrent.futures
import http.client
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

HOST = "127.0.0.1"  # the only address this benchmark talks to


def _free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_image(size=(480, 640), seed=0):
    """JPEG bytes of a photo-like picture: a smooth gradient, noise and a coloured box."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 / width, y * 200 / height, (x + y) * 100 / (width + height)], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    pixels[height // 3 : 2 * height // 3, width // 4 : width // 2] = (200, 40, 40)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def start_server(model, workers, threads):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "locnet_tf.serve", str(model), "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2):
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start: {process.communicate()[1]}") from None
            time.sleep(0.2)


def load(port, image, concurrency, requests, time_limit, warmup):
    """Posts `image` from `concurrency` threads; returns the figures."""
    lock = threading.Lock()
    latencies, errors = [], []
    issued = 0
    stop_at = None

    def post(connection):
        start = time.perf_counter()
        connection.request("POST", "/predict?name=load.jpg", body=image, headers={"Content-Type": "image/jpeg"})
        answer = connection.getresponse()
        body = answer.read()
        elapsed = time.perf_counter() - start
        if answer.status != 200 or "p_c" not in json.loads(body):
            raise RuntimeError(f"HTTP {answer.status}: {body[:200]!r}")
        return elapsed

    def client():
        nonlocal issued
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            while True:
                with lock:
                    if issued >= requests or time.perf_counter() > stop_at:
                        return
                    issued += 1
                try:
                    elapsed = post(connection)
                except Exception as error:  # counted and reported; the connection is opened afresh
                    with lock:
                        errors.append(str(error))
                    connection.close()
                    connection = http.client.HTTPConnection(HOST, port, timeout=60)
                    continue
                with lock:
                    latencies.append(elapsed)
        finally:
            connection.close()

    warm = http.client.HTTPConnection(HOST, port, timeout=60)
    for _ in range(warmup):
        post(warm)
    warm.close()
    start = time.perf_counter()
    stop_at = start + time_limit
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 2),
        "stopped_by": "count" if len(latencies) + len(errors) >= requests else "time limit",
        "requests_per_s": round(len(latencies) / seconds, 1) if seconds > 0 else None,
        "latency_ms": {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)} if len(ms) else None,
    }


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .tflite file (default: the default preset's network, int8)")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="server pool sizes to try (default 1,2)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads per interpreter (default 1)")
    parser.add_argument("--concurrency", type=_ints, default=[1, 4], help="client threads to try (default 1,4)")
    parser.add_argument("--requests", type=int, default=300, help="answers per setting (default 300)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per setting at most (default 60)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--image", help="the image to post (default: a generated 640x480 JPEG)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.time_limit <= 0:
        parser.error("--requests must be at least 1 and --time-limit above 0")

    from video_speed import cpu

    with tempfile.TemporaryDirectory() as work:
        model, info = args.model, {"model": args.model}
        if model is None:
            from video_speed import models_to_time

            built = argparse.Namespace(export=None, model=None, data="synthetic/tiny", data_dir=None, train_steps=50)
            files, info = models_to_time(built, pathlib.Path(work))
            model = files["int8"]
            info["model"] = f"{info['model']} (int8)"
        image = pathlib.Path(args.image).read_bytes() if args.image else make_image()
        report = {"cpu": cpu(), **info, "image_bytes": len(image), "threads_per_worker": args.threads, "runs": []}
        for workers in args.workers:
            process, port = start_server(model, workers, args.threads)
            try:
                for concurrency in args.concurrency:
                    row = load(port, image, concurrency, args.requests, args.time_limit, args.warmup)
                    report["runs"].append({"workers": workers, **row})
                    print(json.dumps(report["runs"][-1]), file=sys.stderr, flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
