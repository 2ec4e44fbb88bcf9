"""Steady answers over time: box jitter and presence flips, with and without smoothing.

    python benchmarks/video_smoothing.py --model export/demo/model_int8.tflite
    python benchmarks/video_smoothing.py --model runs/latest/model.keras --clips 6 --frames 150

Generates clips of a synthetic object crossing a road scene with its true box
in every frame (`locnet_tf.data.builtin.synthetic_video`: it enters half out of view,
crosses while bobbing and growing, leaves, and the clip ends on background;
fresh sensor noise in every frame), writes them as H.264 and reads them back
as `predict` does, predicts every frame once, and scores the raw per-frame
answers and the same answers through `locnet_tf.runtime.smoothing.Smoother`
(`predict`'s default for video) against the truth:

- `box_jitter_px`: how much the box error changes from one frame to the next
  (mean absolute change of `pred - truth` over `b_x, b_y, b_h, b_w`, in
  pixels), over consecutive frames where the object is there and reported.
  The truth moves smoothly, so this is the flicker a viewer sees.
- `box_error_px` and `mean_iou`: how far the box is from the truth at all
  (smoothing must not buy steadiness with lag).
- `presence_flips_per_100`: how often the reported presence changes, per 100
  frames; `truth_flips_per_100` is the clips' own (the object does enter and
  leave), and `presence_accuracy` the share of frames where it is right.

Prints one JSON document.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from locnet_tf.runtime import frame_predictions, smoothing  # noqa: E402
from locnet_tf.data.builtin import synthetic_video  # noqa: E402


def _iou(a, b):
    ax1, ay1, ax2, ay2 = a[0] - a[3] / 2, a[1] - a[2] / 2, a[0] + a[3] / 2, a[1] + a[2] / 2
    bx1, by1, bx2, by2 = b[0] - b[3] / 2, b[1] - b[2] / 2, b[0] + b[3] / 2, b[1] + b[2] / 2
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def score(predictions, truth, size):
    """The figures of one clip's predictions against its truth (see the module docstring)."""
    height, width = size
    scale = np.array([width, height, height, width], np.float64)  # b_x, b_y, b_h, b_w -> pixels
    present = np.array([p.present for p in predictions])
    true_present = np.array([t["present"] for t in truth])
    both = present & true_present
    errors = np.array([np.subtract(p.box, t["box"]) * scale for p, t in zip(predictions, truth)])
    steady = both[1:] & both[:-1]
    jitter = np.abs(errors[1:] - errors[:-1]).mean(axis=1)[steady]
    return {
        "frames": len(predictions),
        "box_jitter_px": float(jitter.mean()) if jitter.size else None,
        "box_error_px": float(np.abs(errors[both]).mean()) if both.any() else None,
        "mean_iou": float(np.mean([_iou(p.box, t["box"]) for p, t, b in zip(predictions, truth, both) if b]))
        if both.any()
        else None,
        "presence_flips": int(np.sum(present[1:] != present[:-1])),
        "truth_flips": int(np.sum(true_present[1:] != true_present[:-1])),
        "presence_accuracy": float(np.mean(present == true_present)),
    }


def combine(rows):
    """Frame-weighted figures over several clips."""
    frames = sum(r["frames"] for r in rows)
    transitions = sum(r["frames"] - 1 for r in rows)

    def mean(key):
        values = [(r[key], r["frames"]) for r in rows if r[key] is not None]
        return sum(v * n for v, n in values) / sum(n for _, n in values) if values else None

    return {
        "frames": frames,
        "box_jitter_px": mean("box_jitter_px"),
        "box_error_px": mean("box_error_px"),
        "mean_iou": mean("mean_iou"),
        "presence_flips_per_100": 100.0 * sum(r["presence_flips"] for r in rows) / transitions,
        "truth_flips_per_100": 100.0 * sum(r["truth_flips"] for r in rows) / transitions,
        "presence_accuracy": mean("presence_accuracy"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default="export/demo/model_int8.tflite",
        help="a .tflite, .keras or SavedModel (default: make demo's int8 export)",
    )
    parser.add_argument("--clips", type=int, default=12, help="clips (classes in turn, a new scene each)")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="clip i is drawn with seed + i")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--exact-resize",
        action="store_true",
        help="resize frames bit for bit as training does, not with FFmpeg's scaler (predict's default for .tflite)",
    )
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    from locnet_tf.evaluate.predictor import Predictor

    predictor = Predictor(args.model, num_threads=args.threads)
    config = smoothing.SmoothingConfig()
    raw_rows, smooth_rows = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for clip in range(args.clips):
            path = pathlib.Path(folder) / f"clip{clip}.mp4"
            truth = synthetic_video.write_clip(
                path, args.frames, (args.size, args.size), args.fps, class_id=clip % 3, seed=args.seed + clip
            )
            # As `predict` reads them (smoothed below): FFmpeg's scaler for a .tflite unless --exact-resize.
            pairs = list(
                frame_predictions.predict_frames(predictor, str(path), smooth=False, exact_resize=args.exact_resize)
            )
            frames, raw = [f for f, _ in pairs], [p for _, p in pairs]
            smoother = smoothing.Smoother(predictor.presence_threshold, predictor.class_names, config)
            steady = [smoother.update(p, frame.timestamp) for p, frame in zip(raw, frames)]
            raw_rows.append(score(raw, truth, (args.size, args.size)))
            smooth_rows.append(score(steady, truth, (args.size, args.size)))
    report = {
        "model": str(args.model),
        "clips": args.clips,
        "seed": args.seed,
        "frames_per_clip": args.frames,
        "frame_size": [args.size, args.size],
        "fps": args.fps,
        "exact_resize": args.exact_resize,
        "smoothing": dataclasses.asdict(config),
        "raw": combine(raw_rows),
        "smoothed": combine(smooth_rows),
        "per_clip": {"raw": raw_rows, "smoothed": smooth_rows},
        "seconds": round(time.perf_counter() - start, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
