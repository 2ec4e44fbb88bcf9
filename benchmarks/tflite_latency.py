"""Single-image latency of `.tflite` files through LiteRT, side by side in one run; no TensorFlow needed.

    python benchmarks/tflite_latency.py EXPORT/model_int8.tflite OTHER/model_int8.tflite [--threads 1,2] [--runs 300]

For each file and thread count: LiteRT's interpreter (XNNPACK) with
`num_threads`, a fixed random input of the file's own shape and dtype, a
warm-up of 20 calls, then `--runs` timed `invoke()` calls; the median and the
10th/90th percentiles in milliseconds. The files alternate call by call
(file A, file B, A, B, ...), so that a load that comes and goes on a shared
machine falls on all of them alike: compare them within one run. Runs on a
device's install (numpy and ai-edge-litert only), which is where the figure
matters. Prints JSON with the CPU.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def cpu_name():
    """The CPU as real_photos.py names it (that module needs nothing but the standard library)."""
    from real_photos import cpu_name as name

    return name()


def interpreter(path, threads):
    """A LiteRT interpreter for `path` with `threads` threads, its input filled with a fixed random image."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=threads)
    runner.allocate_tensors()
    detail = runner.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        data = rng.integers(0, 256, detail["shape"]).astype(detail["dtype"])
    else:
        data = rng.uniform(0, 255, detail["shape"]).astype(detail["dtype"])
    runner.set_tensor(detail["index"], data)
    return runner, [int(v) for v in detail["shape"]], np.dtype(detail["dtype"]).name


def measure(paths, threads, runs):
    """{path: {threads: figures}}, the files timed in alternation."""
    result = {str(p): {"size_mb": round(pathlib.Path(p).stat().st_size / 1e6, 2)} for p in paths}
    for count in threads:
        runners = [interpreter(p, count) for p in paths]
        for runner, _, _ in runners:
            for _ in range(20):
                runner.invoke()
        times = [[] for _ in paths]
        for _ in range(runs):
            for i, (runner, _, _) in enumerate(runners):
                start = time.perf_counter()
                runner.invoke()
                times[i].append((time.perf_counter() - start) * 1000)
        for path, (_, shape, dtype), ms in zip(paths, runners, times):
            ms = np.asarray(ms)
            result[str(path)].update(input=f"{shape} {dtype}")
            result[str(path)][f"{count}_thread_ms"] = {
                "median": round(float(np.median(ms)), 2),
                "p10": round(float(np.percentile(ms, 10)), 2),
                "p90": round(float(np.percentile(ms, 90)), 2),
            }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=pathlib.Path, help=".tflite files")
    parser.add_argument("--threads", default="1", help="thread counts, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=300, help="timed calls per file and thread count")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    threads = [int(t) for t in args.threads.split(",")]
    models = measure(args.models, threads, args.runs)
    print(json.dumps({"cpu": cpu_name(), "runs": args.runs, "models": models}, indent=2))


if __name__ == "__main__":
    main()
