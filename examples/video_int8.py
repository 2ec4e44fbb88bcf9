"""Run an int8 model over a short generated video, with the TF-free runtime.

    python examples/video_int8.py                                  # make demo's export/demo/model_int8.tflite
    python examples/video_int8.py path/to/model_int8.tflite --out video_out/

Writes a 3-second clip of a synthetic car crossing a road scene (its true box
is known in every frame), predicts every frame with the int8 `.tflite` model
through `locnet_tf.runtime` (numpy, Pillow, LiteRT and PyAV: no TensorFlow
needed), steadies the answers over time as `predict` does for video, writes
the annotated clip, and prints a line per half second and how often the
answer was right. (Drawing the clip uses the `synthetic_road` generator, which
comes with the `train` extra; predicting needs only the base install.)
"""

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from locnet_tf.runtime import draw, tflite as runtime, video_writer  # noqa: E402
from locnet_tf.data.builtin import synthetic_video  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model",
        nargs="?",
        default=str(REPO / "export" / "demo" / "model_int8.tflite"),
        help="an int8 .tflite export (default: make demo's)",
    )
    parser.add_argument("--out", default="video_out", help="folder for the clip and the annotated clip")
    args = parser.parse_args(argv)
    if not pathlib.Path(args.model).is_file():
        print(f"error: {args.model}: no such model; run `make demo` first, or pass a .tflite file", file=sys.stderr)
        return 1

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "car.mp4"
    fps = 30
    truth = synthetic_video.write_clip(clip, 90, (192, 256), fps, class_id=1, seed=4)
    print(f"wrote {clip}: 90 frames, 256x192, {fps} frames/s, a car crossing")

    model = runtime.TFLitePredictor(args.model, num_threads=1)
    print(
        f"{args.model}: classes {model.class_names}, input {model.image_size} px "
        f"({model.runner.input_dtype.__name__}), resize {model.resize} (from the file's own metadata)"
    )
    right = 0
    with video_writer.VideoWriter(out / "car_annotated.mp4", fps) as writer:
        for (frame, prediction), true in zip(model.predict_video(clip), truth):
            writer.write(draw.annotate(frame.image, prediction, extra=f"{frame.timestamp:.2f} s"))
            right += prediction.present == true["present"]
            if frame.index % 15 == 0:
                answer = (
                    f"{prediction.class_name} {prediction.score:.2f} at {[round(v) for v in prediction.box_pixels]}"
                    if prediction.present
                    else "nothing"
                )
                print(f"  {frame.timestamp:4.1f} s  {answer:40s} (truth: {'car' if true['present'] else 'nothing'})")
    print(f"presence right in {right} of {len(truth)} frames; annotated clip: {writer.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
