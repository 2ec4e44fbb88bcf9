"""Predict images, videos, cameras and streams with any locnet_tf model: one JSON line per frame.

    python -m locnet_tf.predict export/latest/model_int8.tflite photo1.jpg photos/ "shots/**/*.png"
    python -m locnet_tf.predict export/latest/model_int8.tflite match.mp4 --out predictions/
    python -m locnet_tf.predict export/latest/model_int8.tflite 0 --max-frames 300   # camera 0
    python -m locnet_tf.predict model.tflite rtsp://camera.local/stream --stride 2

Sources (`locnet_tf.runtime.source_specs.expand_sources`): image files, folders (recursive),
globs, video files (mp4, avi, mov, mkv, webm), a camera index, and stream URLs
(rtsp, http, ...). Each line holds `source`, `frame` (its index in the
source), `timestamp` (seconds; null for a still image; image files also keep
the old `image` key) and the `locnet_tf.runtime.Prediction`: `present`, `p_c`,
`class_id`, `class_name`, `class_score`, `score`, `box` (`[b_x, b_y, b_h, b_w]`
relative), `box_xyxy` (relative corners), `box_pixels` (`[x1, y1, x2, y2]` in
the frame's pixels), `image_size` and `class_scores`.

With `--out DIR`, each image is saved as `DIR/NAME.png` and each video,
camera or stream as `DIR/NAME.mp4` (H.264, at the source's frame rate divided
by `--stride`), with the box, class and score drawn. DIR must be new, empty
or an earlier predictions folder (marked `.locnet_tf.json`), and may not be,
hold or lie inside a source or the model (`locnet_tf.core.outputs`). For videos the answers
are steadied over time by default (box smoothing and presence hysteresis,
`locnet_tf.runtime.smoothing`; `--no-smooth` gives the raw per-frame answers). A
progress bar with frames/s goes to stderr, then a summary line. Each output
is written under a temporary name and renamed into place when complete: a
run that is killed or fails leaves the previous file of that name as it was
(its leftover `.NAME.partial-*` goes with the next run that writes NAME).
Ctrl-C stops a camera or stream (its video is kept and summarised); during
files it interrupts (`interrupted`, exit status 130, the unfinished video
removed).

A `.tflite` model runs without TensorFlow (numpy, Pillow, LiteRT and PyAV for
video): its class names and settings are inside the file.
"""

import itertools
import json
import pathlib
import sys
import time

from locnet_tf.core import cli
from locnet_tf.runtime import draw
from locnet_tf.evaluate import predictor as inference
from locnet_tf.core import outputs
from locnet_tf.runtime import frame_predictions, source_specs, video_writer
from locnet_tf.core.command_configs import PredictConfig


def predict_images(
    model,
    images,
    out=PredictConfig.out,
    *,
    num_threads=PredictConfig.threads,
    resize=PredictConfig.resize,
    presence_threshold=PredictConfig.threshold,
    predictor=None,
    **options,
):
    """Predicts image files (or any sources) and optionally saves them with the prediction drawn.

    Args:
        model: a `.keras` file, SavedModel folder or `.tflite` file (ignored
            when `predictor` is given).
        images: iterable of sources: image or video paths, folders, globs,
            camera indices, stream URLs.
        out: folder for the annotated pictures / videos, or None for none.
        num_threads: int. LiteRT threads (TFLite models).
        resize: `"stretch"`, `"letterbox"` or None (the model's).
        presence_threshold: float or None (the model's).
        predictor: an existing `evaluate.Predictor` to reuse.
        **options: `iter_predictions`'s `stride`, `max_frames`, `smooth`, ...

    Returns:
        list of dicts, one per frame (see the module docstring), plus
        `"picture"` (the saved PNG) or `"video"` (the annotated .mp4) when
        `out` is given.
    """
    return list(
        iter_predictions(
            model,
            images,
            out,
            num_threads=num_threads,
            resize=resize,
            presence_threshold=presence_threshold,
            predictor=predictor,
            **options,
        )
    )


def iter_predictions(
    model,
    sources,
    out=PredictConfig.out,
    *,
    num_threads=PredictConfig.threads,
    resize=PredictConfig.resize,
    presence_threshold=PredictConfig.threshold,
    class_names=PredictConfig.classes,
    predictor=None,
    stride=PredictConfig.stride,
    max_frames=PredictConfig.max_frames,
    smooth=PredictConfig.smooth,
    progress=False,
    summary=None,
    decoder_threads=PredictConfig.decoder_threads,
    exact_resize=PredictConfig.exact_resize,
):
    """`predict_images` as a generator: yields each frame's dict as soon as it is known.

    Args:
        stride: int. Predict every `stride`-th frame of a video or stream.
        max_frames: int or None. Stop after this many frames in all.
        smooth: bool or None. Steady answers over time; None: on for videos,
            cameras and streams, off for images.
        progress: bool. Show a progress bar (frames/s) on stderr.
        summary: a dict to fill with the run's totals (frames, sources,
            seconds, present, outputs), or None.
        decoder_threads: int. FFmpeg decoder threads (0: FFmpeg's choice).
        exact_resize: bool. Resize video frames bit for bit as training does, not with FFmpeg's
            scaler (`locnet_tf.runtime.frame_predictions.predict_frames`; still images are always resized exactly).
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}.")
    # Before the model is loaded: a new, empty or earlier predictions folder that holds no model or source.
    sources = list(sources)  # read twice: here and by expand_sources
    inputs = _inputs(model if predictor is None else None, sources)
    if out is not None:
        outputs.claim_folder(out, "predict", inputs)
    predictor = predictor or inference.Predictor(
        model,
        num_threads=num_threads,
        resize=resize,
        presence_threshold=presence_threshold,
        class_names=class_names,
    )
    sources = source_specs.expand_sources(sources, decoder_threads=decoder_threads)
    out = pathlib.Path(out) if out else None
    if out is not None:
        # The files globs and folders expanded to: no annotated picture may replace one of them.
        outputs.check_not_input(out, [(s.spec, f"a source {s.kind}") for s in sources if s.kind in ("image", "video")])
        out.mkdir(parents=True, exist_ok=True)
        outputs.mark_folder(out, "predict")
    totals = summary if summary is not None else {}
    totals.update(frames=0, sources=0, present=0, outputs=[], seconds=0.0, live=False)
    # Partial pictures and videos a killed run left here: each goes when its name is written again.
    stale = outputs.stale_partials(out) if out is not None else {}
    bar = _progress_bar(sources, stride, max_frames) if progress else None
    used_names = set()
    start = time.perf_counter()
    try:
        for source in sources:
            remaining = None if max_frames is None else max_frames - totals["frames"]
            if remaining == 0:
                break
            totals["sources"] += 1
            totals["live"] = source.live  # for main: Ctrl-C stops a live source, and interrupts a file
            name = _unique_name(source.name, used_names)
            for partial in stale.pop(f"{name}.png", []) + stale.pop(f"{name}.mp4", []):
                partial.unlink(missing_ok=True)
            writer = None
            keep = False  # the annotated video is put in place only when complete (or a live source stopped)
            # The frames are closed as soon as the source is done with (max_frames reached, an error, the
            # caller stopping), and the video or stream with them: not whenever the garbage collector runs.
            pairs = frame_predictions.predict_frames(
                predictor, source, stride=stride, smooth=smooth, exact_resize=exact_resize
            )
            try:
                for frame, prediction in itertools.islice(pairs, remaining):
                    row = {
                        "source": source.spec,
                        "frame": frame.index,
                        "timestamp": frame.timestamp,
                        **prediction.to_dict(),
                    }
                    if source.kind == "image":
                        row = {"image": source.spec, **row}
                    if out is not None and source.kind == "image":
                        row["picture"] = draw.save_picture(frame.image, prediction, out / f"{name}.png")
                        totals["outputs"].append(row["picture"])
                    elif out is not None:
                        if writer is None:
                            writer = video_writer.VideoWriter(out / f"{name}.mp4", source.fps)
                            totals["outputs"].append(writer.path)
                        writer.write(draw.annotate(frame.image, prediction, extra=f"{frame.timestamp:.2f} s"))
                        row["video"] = writer.path
                    totals["frames"] += 1
                    totals["present"] += bool(prediction.present)
                    if bar is not None:
                        bar.update(1)
                    yield row
                keep = True
            except GeneratorExit:  # the caller stopped reading: the video of the frames it had is whole
                keep = True
                raise
            except KeyboardInterrupt:  # Ctrl-C: how a camera or stream is stopped; a file's video is unfinished
                keep = source.live
                raise
            finally:
                pairs.close()
                if writer is not None:
                    writer.close() if keep else writer.discard()
    finally:
        totals["seconds"] = time.perf_counter() - start
        if bar is not None:
            bar.close()


def _inputs(model, sources):
    """The (path, description) inputs `--out` must keep clear of: the model, source files and folders."""
    inputs = [(model, "the model")] if isinstance(model, (str, pathlib.PurePath)) else []
    for source in sources:
        source = str(source)
        if pathlib.Path(source).is_dir():
            inputs.append((source, "a source folder"))
        elif pathlib.Path(source).is_file():
            inputs.append((source, "a source file"))
    return inputs


def _progress_bar(sources, stride, max_frames):
    from tqdm import tqdm  # comes with LiteRT

    total = 0
    for source in sources:
        if source.kind == "image":
            total += 1
            continue
        if source.live:
            total = None
            break
        container = source.open()  # the header only: how many frames the file says it has
        try:
            count = source.count(container, stride)
        finally:
            container.close()
        if count is None:
            total = None
            break
        total += count
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)


def _unique_name(stem, used):
    # Two inputs named a/x.jpg and b/x.jpg must not overwrite one picture.
    name, index = stem, 1
    while name in used:
        index += 1
        name = f"{stem}_{index}"
    used.add(name)
    return name


def format_summary(totals):
    """The closing line: frames, sources, speed, presence, outputs."""
    frames, seconds = totals["frames"], totals["seconds"]
    rate = frames / seconds if seconds > 0 else 0.0
    share = f" ({100 * totals['present'] / frames:.0f}%)" if frames else ""
    line = (
        f"{frames} frame{'s' if frames != 1 else ''} from {totals['sources']} "
        f"source{'s' if totals['sources'] != 1 else ''} in {seconds:.1f} s ({rate:.1f} frames/s); "
        f"object present in {totals['present']}{share}"
    )
    if totals["outputs"]:
        shown = ", ".join(totals["outputs"][:3]) + (
            f" and {len(totals['outputs']) - 3} more" if len(totals["outputs"]) > 3 else ""
        )
        line += f"; wrote {shown}"
    return line


def build_parser():
    """The command line: the model and sources, then one flag per `PredictConfig` field, grouped."""
    parser = cli.ArgumentParser(
        prog="python -m locnet_tf.predict",
        description="Predict presence, class and box for images, videos, cameras and streams "
        "with a .keras, SavedModel or .tflite model.",
    )
    parser.add_argument("model", help="a .keras file, a SavedModel folder or a .tflite file")
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="image or video files, folders, globs, a camera index (0) or a stream URL (rtsp://, http://)",
    )
    return PredictConfig.add_arguments(parser)


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = PredictConfig.from_args(args)
    totals = {}
    rows = iter_predictions(
        args.model,
        args.sources,
        settings.out,
        num_threads=settings.threads,
        resize=settings.resize,
        presence_threshold=settings.threshold,
        class_names=settings.classes,
        stride=settings.stride,
        max_frames=settings.max_frames,
        smooth=settings.smooth,
        progress=not settings.quiet,
        summary=totals,
        decoder_threads=settings.decoder_threads,
        exact_resize=settings.exact_resize,
    )
    try:
        for row in rows:
            print(json.dumps(row), flush=True)
    except KeyboardInterrupt:
        # A camera or stream runs until stopped: its video is closed and kept, then summarised. Ctrl-C
        # during a file is an interruption (cli.run: one line, status 130); its unfinished video goes.
        live = totals.get("live")
        try:
            rows.throw(KeyboardInterrupt)
        except (KeyboardInterrupt, StopIteration):
            pass
        if not live:
            raise
    if not settings.quiet:
        print(format_summary(totals), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from locnet_tf.core import cli

    sys.exit(cli.run(main))
