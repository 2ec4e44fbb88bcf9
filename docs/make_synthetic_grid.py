"""Draws docs/synthetic_road_grid.png: 16 test examples of synthetic_road with their boxes.

TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python docs/make_synthetic_grid.py [--data-dir DIR]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from locnet_tf.core import figures as plots  # noqa: E402
from locnet_tf.data import pipeline  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's)")
    parser.add_argument("--spec", default="synthetic")
    parser.add_argument("--out", default=str(HERE / "synthetic_road_grid.png"))
    args = parser.parse_args(argv)
    dataset, names = pipeline.examples(args.spec, "test", data_dir=args.data_dir)
    rows = list(dataset.take(16).as_numpy_iterator())
    path = plots.draw_examples_grid(
        [r["image"] for r in rows],
        [r["box"] for r in rows],
        [r["class_id"] for r in rows],
        names,
        args.out,
        present=[r["present"] for r in rows],
        columns=8,
        cell_size=2.0,
        title=f"{args.spec}: 16 test images (box tight around the visible object)",
    )
    print(path)


if __name__ == "__main__":
    main()
