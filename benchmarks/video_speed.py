"""End-to-end video speed: frames/s of decode -> resize -> run -> answer (-> draw -> write), per stage.

    python benchmarks/video_speed.py --export export/demo          # make demo's int8 and float32 files
    python benchmarks/video_speed.py --model runs/latest/model.keras
    python benchmarks/video_speed.py                                # the default preset's network, trained briefly

Generates a 1280x720 H.264 clip (`locnet_tf.data.builtin.synthetic_video`: a road
scene, a car crossing it, sensor noise in every frame; x264 `veryfast` at
4 Mbit/s, a typical 720p camera or web video), then runs it through what `python -m locnet_tf.predict MODEL clip.mp4`
does, with the int8 and the float32 `.tflite` model, on 1 and 2 threads, with
and without writing the annotated video, and times each stage:

- `decode`: FFmpeg (PyAV) decodes the next H.264 frame (YUV 4:2:0);
- `convert`: FFmpeg converts it to RGB (`to_ndarray("rgb24")`); on the fast
  path only when the annotated video is written (it is drawn on the full frame);
- `resize`: on the exact path (`--exact-resize`) `locnet_tf.core.resize.resize` (bit
  for bit the training pipeline's); on the fast path (`predict`'s default for a
  `.tflite` model's video) FFmpeg's scaler converts and resizes in one step
  (`locnet_tf.runtime.video.scale_to_model`);
- `run`: LiteRT (XNNPACK) runs the model;
- `answer`: the box mapped back to the frame, the `Prediction` decoded, and the
  answer smoothed over time (`locnet_tf.runtime.smoothing`, on for video by default);
- `draw` and `write` (with writing): the box drawn (`locnet_tf.runtime.draw`) and the
  frame encoded into the output `.mp4` (H.264).

"threads" is both LiteRT's thread count and FFmpeg's decoder (and encoder)
threads, so a 1-thread figure uses one core for everything. `frames_per_s` is
frames / wall time of the whole loop. The two paths run side by side: for each
setting they alternate `--repeats` times (exact, fast, exact, fast, ...), so a
load that comes and goes on a shared machine falls on both alike, and the
median of each is reported with the speed-up (`fast_over_exact`). `agreement`
compares the two paths' raw answers on every frame of the clip (boxes' IoU,
p_c). Prints one JSON document with the CPU (`lscpu`'s model name and flags
that matter for int8: AVX-512 VNNI, AVX-VNNI) and the load average.
"""

import argparse
import json
import os
import statistics
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("decode", "convert", "resize", "run", "answer", "draw", "write")
# 4 Mbit/s: a typical 720p camera or web video (YouTube asks for 5 at 720p30).
BIT_RATE = 4_000_000


def cpu():
    """The CPU's name and its vector extensions, from `lscpu`."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {"model_name": None}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("Flags", "").split())
    return {
        "model_name": fields.get("Model name"),
        "cpu_family": fields.get("CPU family"),
        "cpus": fields.get("CPU(s)"),
        "vector": [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16") if f in flags],
    }


def make_clip(path, frames, size, fps):
    """Writes the benchmark clip; returns its size in bytes."""
    from locnet_tf.runtime import video_writer
    from locnet_tf.data.builtin import synthetic_video

    with video_writer.VideoWriter(path, fps, bit_rate=BIT_RATE) as writer:
        for image, _ in synthetic_video.frames(frames, size, class_id=1, seed=7, object_size=0.35, absent_share=0.1):
            writer.write(image)
    return pathlib.Path(path).stat().st_size


def models_to_time(args, work):
    """{quantization: .tflite path} for int8 and float32."""
    if args.export:
        folder = pathlib.Path(args.export)
        return {q: folder / f"model_{q}.tflite" for q in ("int8", "float32")}, {"export": str(folder)}
    from locnet_tf.export import run as export
    from locnet_tf.export import parity

    model_path = pathlib.Path(args.model) if args.model else None
    info = {"model": str(model_path) if model_path else None}
    if model_path is None:
        # The `default` preset's network (128 px, simple backbone, depths 1, 2, 3), trained briefly.
        import keras

        from locnet_tf.core import config as config_lib
        from locnet_tf.model import network as model_lib
        from locnet_tf.data import pipeline

        config = config_lib.preset("default")
        keras.utils.set_random_seed(0)
        model = model_lib.build_model(image_size=config.image_size, filters=config.filters, depths=config.depths)
        model_lib.compile_model(model, learning_rate=2e-3)
        train = (
            pipeline.make_dataset(
                args.data, "train", image_size=config.image_size, batch_size=32, data_dir=args.data_dir, cache=False
            )
            .repeat()
            .take(args.train_steps)
        )
        model.fit(train, epochs=1, verbose=0)
        model_path = work / "model.keras"
        model.save(model_path)
        info.update(model="default preset network", image_size=config.image_size, train_steps=args.train_steps)
    no_gates = parity.Gates(float("inf"), float("-inf"), float("inf"))
    export.export_model(
        model_path,
        work / "export",
        formats=["tflite"],
        quantize=["float32", "int8"],
        data=args.data,
        data_dir=args.data_dir,
        calibration_samples=100,
        parity_samples=64,
        gates=no_gates,
        verbose=False,
    )
    return {q: work / "export" / f"model_{q}.tflite" for q in ("int8", "float32")}, info


def time_one(model_path, clip, threads, write, out_dir, path="exact"):
    """Runs the clip once by the `"exact"` or the `"fast"` path; returns frames, seconds and the time per stage."""
    import numpy as np

    from locnet_tf.runtime import draw, smoothing, video, video_writer
    from locnet_tf.runtime import prediction as prediction_lib
    from locnet_tf.runtime import tflite as runtime
    from locnet_tf.core import geometry

    predictor = runtime.TFLitePredictor(model_path, num_threads=threads)
    smoother = smoothing.Smoother(predictor.presence_threshold, predictor.class_names)
    source = video.Source("video", str(clip), decoder_threads=threads)
    spent = dict.fromkeys(STAGES, 0.0)
    writer = None
    container = source.open()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = threads
    reformatter = av_reformatter()
    frames = 0
    # Warm-up: XNNPACK prepares its kernels on the first call.
    predictor.runner(np.zeros((1, predictor.image_size, predictor.image_size, 3), np.uint8))
    start = last = time.perf_counter()

    def lap(stage):
        nonlocal last
        now = time.perf_counter()
        spent[stage] += now - last
        last = now

    decoded = container.decode(stream)
    while True:
        frame = next(decoded, None)
        if frame is None:
            break
        lap("decode")
        height, width = frame.height, frame.width
        if path == "exact":
            image = frame.to_ndarray(format="rgb24")
            lap("convert")
            model_input = predictor.preprocess(image)
            lap("resize")
        else:
            model_input = video.scale_to_model(frame, predictor.image_size, predictor.resize, reformatter)
            lap("resize")
            if write:  # the box is drawn on the full frame
                image = frame.to_ndarray(format="rgb24")
                lap("convert")
        out = predictor.runner(model_input[None])
        lap("run")
        out["box"] = geometry.boxes_to_original(out["box"], height, width, predictor.image_size, predictor.resize)
        prediction = prediction_lib.decode(out, predictor.class_names, predictor.presence_threshold, height, width)
        prediction = smoother.update(prediction, frame.time)
        lap("answer")
        if write:
            picture = draw.annotate(image, prediction, extra=f"{frame.time:.2f} s")
            lap("draw")
            if writer is None:
                writer = video_writer.VideoWriter(
                    out_dir / f"{pathlib.Path(model_path).stem}_{threads}_{path}.mp4", source.rate(container)
                )
                writer.stream.thread_count = threads
            writer.write(picture)
            lap("write")
        frames += 1
    if writer is not None:
        writer.close()
        lap("write")
    container.close()
    seconds = time.perf_counter() - start
    return {
        "frames": frames,
        "seconds": round(seconds, 3),
        "frames_per_s": round(frames / seconds, 1),
        "ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in spent.items() if v or k in STAGES[:5]},
    }


def av_reformatter():
    import av

    return av.video.reformatter.VideoReformatter()


def agreement(model_path, clip):
    """The two paths' raw answers on every frame: IoU of the boxes and |p_c| difference (and presence agreement)."""
    import numpy as np

    from locnet_tf.runtime import tflite as runtime
    from locnet_tf.core import geometry

    predictor = runtime.TFLitePredictor(model_path, num_threads=1)
    exact = [p for _, p in predictor.predict_video(str(clip), smooth=False, exact_resize=True)]
    fast = [p for _, p in predictor.predict_video(str(clip), smooth=False)]
    iou = geometry.iou([p.box for p in exact], [p.box for p in fast])
    p_c = np.abs(np.array([p.p_c for p in exact]) - np.array([p.p_c for p in fast]))
    return {
        "frames": len(exact),
        "box_iou_mean": round(float(iou.mean()), 4),
        "box_iou_min": round(float(iou.min()), 4),
        "p_c_abs_diff_mean": round(float(p_c.mean()), 5),
        "p_c_abs_diff_max": round(float(p_c.max()), 5),
        "presence_agrees": round(float(np.mean([x.present == y.present for x, y in zip(exact, fast)])), 4),
        "class_agrees": round(float(np.mean([x.class_id == y.class_id for x, y in zip(exact, fast)])), 4),
    }


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ints(text):
    return [int(x) for x in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", help="an export folder with model_int8.tflite and model_float32.tflite")
    parser.add_argument("--model", help="a .keras model to export (float32, int8) and time")
    parser.add_argument("--data", default="synthetic/tiny", help="data SPEC for brief training / calibration")
    parser.add_argument("--data-dir", help="TFDS data folder")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300, help="frames in the 1280x720 clip")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of each path per setting, interleaved; the median is kept"
    )
    parser.add_argument("--threads", type=_ints, default=[1, 2], help="thread counts to time (default 1,2)")
    parser.add_argument("--models", type=lambda t: t.split(","), default=["int8", "float32"], help="int8,float32")
    parser.add_argument("--work", help="folder for the clip, models and outputs (default: a temporary one)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="locnet_video_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    clip = work / "clip_1280x720.mp4"
    clip_bytes = make_clip(clip, args.frames, (720, 1280), args.fps)
    models, model_info = models_to_time(args, work)
    results = []
    load = {"before": load_average()}
    for quantization, path in models.items():
        if quantization not in args.models:
            continue
        for threads in args.threads:
            for write in (False, True):
                runs = {"exact": [], "fast": []}
                for _ in range(args.repeats):  # interleaved: a passing load falls on both paths alike
                    for which in ("exact", "fast"):
                        runs[which].append(time_one(path, clip, threads, write, work, which))
                row = {"model": quantization, "threads": threads, "write": write}
                for which, timed in runs.items():
                    rates = [r["frames_per_s"] for r in timed]
                    middle = sorted(timed, key=lambda r: r["frames_per_s"])[len(timed) // 2]
                    row[which] = {
                        "frames_per_s_median": round(statistics.median(rates), 1),
                        "frames_per_s_runs": rates,
                        "ms_per_frame": middle["ms_per_frame"],
                        "frames": middle["frames"],
                    }
                row["fast_over_exact"] = round(
                    row["fast"]["frames_per_s_median"] / row["exact"]["frames_per_s_median"], 2
                )
                results.append(row)
                print(
                    f"{quantization:8s} threads={threads} write={str(write):5s} exact "
                    f"{row['exact']['frames_per_s_median']:7.1f} fast {row['fast']['frames_per_s_median']:7.1f} "
                    f"frames/s ({row['fast_over_exact']}x) fast {row['fast']['ms_per_frame']}",
                    file=sys.stderr,
                )
    load["after"] = load_average()
    agree = {q: agreement(p, clip) for q, p in models.items() if q in args.models}
    report = {
        "cpu": cpu(),
        "clip": {
            "size": [1280, 720],
            "frames": args.frames,
            "fps": args.fps,
            "codec": f"h264 (libx264 veryfast, {BIT_RATE / 1e6:g} Mbit/s)",
            "bytes": clip_bytes,
        },
        "models": {**model_info, **{q: str(p) for q, p in models.items()}},
        "load_average_1_5_15_min": load,
        "results": results,
        "agreement_fast_vs_exact": agree,
        "command": "python benchmarks/video_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
