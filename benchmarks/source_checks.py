"""What checking a source's images and decoding them in tf.data cost, as JSON.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/source_checks.py [--rounds 3]

Measures, on the real photos beside the repo (`../shared/data`):

- `load`: seconds to read each source (`csv:caltech101_loc` with
  `skip_bad`, `voc:hands_loc`), every image checked and decoded
  (`verify_images`, the default), each in a fresh process: with the on-disk
  check cache off, then with an empty one (`cold`, it is filled) and again
  (`warm`, the next run: evaluate or export after train);
- `decode`: seconds for tf.data to read and decode 600 Caltech JPEGs
  (`records_dataset` -> `decode`), with what the source reader found in the
  records (orientation, file size: no Python per image) and without it
  (`read_image(path)` alone: the header read by Pillow in a py_function).
  Best and median of 8 passes, wall and CPU (the process's, all threads).

Run it with another checkout first on PYTHONPATH to compare versions (options
a version does not have are ignored).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = {"caltech": (f"csv:{DATA / 'caltech101_loc'}", True), "hands": (f"voc:{DATA / 'hands_loc'}", False)}

LOAD = """
import json, sys, time
from locnet_tf.data import sources
t, c = time.perf_counter(), time.process_time()
data = sources.load_source(sys.argv[1], skip_bad=sys.argv[2] == "1")
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
                  "images": sum(len(v) for v in data.records.values())}))
"""


def run_load(spec, skip_bad, cache):
    import locnet_tf

    # The locnet_tf this process imported (PYTHONPATH), from anywhere else (the working directory would come first).
    env = dict(
        os.environ,
        LOCNET_TF_CHECK_CACHE=cache,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(pathlib.Path(locnet_tf.__file__).parents[1]),
    )
    out = subprocess.run(
        [sys.executable, "-c", LOAD, spec, "1" if skip_bad else "0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def load_figures(rounds):
    figures = {}
    for name, (spec, skip_bad) in SOURCES.items():
        runs = {"no_cache": [], "cold_cache": [], "warm_cache": []}
        for _ in range(rounds):
            runs["no_cache"].append(run_load(spec, skip_bad, "0"))
            with tempfile.TemporaryDirectory() as folder:
                cache = os.path.join(folder, "checks.sqlite3")
                runs["cold_cache"].append(run_load(spec, skip_bad, cache))
                runs["warm_cache"].append(run_load(spec, skip_bad, cache))
        figures[name] = {"spec": spec, "images": runs["no_cache"][0]["images"]} | {
            kind: {"seconds": sorted(round(r["seconds"], 3) for r in rs), "cpu": sorted(round(r["cpu"], 3) for r in rs)}
            for kind, rs in runs.items()
        }
    return figures


def decode_figures(count=600, passes=9):
    import dataclasses

    import tensorflow as tf

    from locnet_tf.data import decode, pipeline, sources

    spec, skip_bad = SOURCES["caltech"]
    records = [r for v in sources.load_source(spec, skip_bad=skip_bad).records.values() for r in v][:count]
    bare = [dataclasses.replace(r, **{k: None for k in ("orientation", "file_size") if hasattr(r, k)}) for r in records]
    figures = {}
    for name, rows in (("records", records), ("read_image_alone", bare)):
        dataset = pipeline.records_dataset(rows).map(decode.decode, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(lambda example: tf.shape(example["image"]))
        wall, cpu = [], []
        for _ in range(passes):
            t, c = time.perf_counter(), time.process_time()
            for _ in dataset:
                pass
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        wall, cpu = sorted(wall[1:]), sorted(cpu[1:])  # the first pass traces
        figures[name] = {
            "wall_best": round(wall[0], 3),
            "wall_median": round(wall[len(wall) // 2], 3),
            "cpu_best": round(cpu[0], 3),
            "cpu_median": round(cpu[len(cpu) // 2], 3),
        }
    return {"images": len(records)} | figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process loads of each source, per kind")
    args = parser.parse_args()
    if not (DATA / "caltech101_loc").is_dir():
        sys.exit(f"error: the real photos are not at {DATA}")
    import locnet_tf

    print(
        json.dumps(
            {
                "locnet_tf": str(pathlib.Path(locnet_tf.__file__).parent),
                "cpus": os.cpu_count(),
                "load": load_figures(args.rounds),
                "decode": decode_figures(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
