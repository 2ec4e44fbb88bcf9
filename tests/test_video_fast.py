"""Video's fast path: FFmpeg's scaler converts and resizes frames to the model input in one step.

Checked against the exact path (RGB conversion, then `resize_lib.resize`, bit for bit the training
pipeline's) on generated H.264 clips, for stretch and letterbox, upright and turned frames.

The tolerance (also in docs/benchmarks.md): per frame, the mean absolute difference at most
MEAN_TOLERANCE grey levels, the 99th percentile at most P99_TOLERANCE and every pixel within
MAX_TOLERANCE. The resize kernels agree (swscale's bilinear widened when shrinking is TensorFlow's
antialiased triangle: at most 4 levels apart on the same RGB picture); what differs is the colour
conversion: the exact path's converter repeats each chroma sample and reads about 1 level dark
against BT.601, the scaler interpolates chroma, which moves pixels at sharp colour edges by more.
On predictions: presence within P_C_TOLERANCE and boxes with IoU at least IOU_TOLERANCE.
"""

import json

import av
import numpy as np
import pytest


from locnet_tf.core import resize as resize_lib
from locnet_tf.evaluate import predictor as inference
from locnet_tf import predict
from locnet_tf.runtime import tflite as runtime, video
from locnet_tf.core import geometry
from locnet_tf.data.builtin import synthetic_video

MEAN_TOLERANCE = 2.0
P99_TOLERANCE = 16
MAX_TOLERANCE = 56
P_C_TOLERANCE = 0.05
IOU_TOLERANCE = 0.85


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame 180x320 H.264 (4:2:0) clip of the synthetic road scene with a car crossing it."""
    path = tmp_path_factory.mktemp("fast") / "road.mp4"
    synthetic_video.write_clip(path, 12, (180, 320), 30, class_id=1, seed=3, absent_share=0.25)
    return path


def decoded_frames(path):
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def assert_close(fast, exact):
    assert fast.shape == exact.shape and fast.dtype == np.uint8
    difference = np.abs(fast.astype(int) - exact.astype(int))
    assert difference.mean() <= MEAN_TOLERANCE, difference.mean()
    assert np.percentile(difference, 99) <= P99_TOLERANCE, np.percentile(difference, 99)
    assert difference.max() <= MAX_TOLERANCE, difference.max()
    return difference


@pytest.mark.parametrize("method", ["stretch", "letterbox"])
@pytest.mark.parametrize("size", [64, 128])
def test_the_scaler_gives_the_exact_resize_within_the_tolerance(clip, method, size):
    for frame in decoded_frames(clip):
        exact = resize_lib.resize(video.upright(frame.to_ndarray(format="rgb24"), frame), size, method)
        fast = video.scale_to_model(frame, size, method)
        difference = assert_close(fast, exact)
        if method == "letterbox":
            # The padding is where the exact path puts it, and the same value: 180x320 lands at rows 14..49 of 64.
            new_h, _, top, _ = geometry.letterbox_geometry(180, 320, size, size)
            assert (fast[:top] == 0).all() and (fast[top + new_h :] == 0).all()
            assert difference[:top].max() == 0 and difference[top + new_h :].max() == 0


def test_the_fast_path_is_not_the_exact_one(clip):
    # The tolerance is needed (else this file tests nothing): the two paths differ somewhere.
    frame = decoded_frames(clip)[0]
    exact = resize_lib.resize(frame.to_ndarray(format="rgb24"), 64)
    assert (video.scale_to_model(frame, 64) != exact).any()


def test_a_turned_video_is_scaled_upright(tmp_path):
    # A phone's portrait video: landscape frames stored with a display matrix (turn 90 degrees clockwise).
    path = tmp_path / "portrait.mp4"
    scenes = [image for image, _ in synthetic_video.frames(3, (96, 160), class_id=0, seed=5)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = 96, 160
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(-90)
        for image in scenes:
            image[:24, :40] = (230, 40, 30)  # a red block in the stored top-left corner: top-right when shown
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = list(video.Source("video", str(path)).frames(model_input=(64, "letterbox")))
    assert (frames[0].height, frames[0].width) == (160, 96)
    for frame in frames:
        exact = resize_lib.resize(frame.image, 64, "letterbox")
        assert_close(frame.model_input, exact)
        assert frame.model_input[4, 45:50, 0].min() > 180  # the red block, top right
    stretched = video.scale_to_model(decoded_frames(path)[0], 64, "stretch")
    assert_close(stretched, resize_lib.resize(frames[0].image, 64))


def test_frames_convert_to_rgb_only_when_asked(clip):
    frames = list(video.Source("video", str(clip)).frames(model_input=(64, "stretch")))
    assert all(f._image is None for f in frames)  # nothing converted yet
    assert frames[0].model_input.shape == (64, 64, 3) and (frames[0].height, frames[0].width) == (180, 320)
    assert frames[0].image.shape == (180, 320, 3)  # the full frame, for drawing on
    plain = list(video.Source("video", str(clip)).frames())
    assert all(f.model_input is None for f in plain)
    assert all((a.image == b.image).all() for a, b in zip(frames, plain, strict=True))


@pytest.mark.parametrize("method", ["stretch", "letterbox"])
def test_predictions_agree_and_the_exact_flag_is_bit_exact(smoke, clip, method):
    model = smoke["export"] / "model_int8.tflite"
    predictor = runtime.TFLitePredictor(model, num_threads=1, resize=method)
    fast = list(predictor.predict_video(str(clip), smooth=False))
    exact = list(predictor.predict_video(str(clip), smooth=False, exact_resize=True))
    assert len(fast) == len(exact) == 12
    for (frame, got), (exact_frame, want) in zip(fast, exact, strict=True):
        assert frame.model_input is not None and exact_frame.model_input is None
        # The exact flag: the frame converted to RGB, then resized as training does, bit for bit.
        assert want == predictor.predict(exact_frame.image)
        assert abs(got.p_c - want.p_c) <= P_C_TOLERANCE
        assert geometry.iou(got.box, want.box) >= IOU_TOLERANCE
        assert tuple(got.image_size) == tuple(want.image_size) == (180, 320)


def test_the_command_line_flag(smoke, clip, capsys):
    model = str(smoke["export"] / "model_int8.tflite")
    rows = {}
    for flag in ([], ["--exact-resize"]):
        assert predict.main([model, str(clip), "--quiet", "--no-smooth", "--threads", "1", *flag]) == 0
        rows[bool(flag)] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows[True]) == len(rows[False]) == 12
    # --exact-resize: what the predictor gives for each frame resized as training does.
    predictor = inference.Predictor(model, num_threads=1)
    for frame, row in zip(video.Source("video", str(clip)).frames(), rows[True], strict=True):
        assert row == {**row, **json.loads(json.dumps(predictor.predict(frame.image).to_dict()))}
    for fast, exact in zip(rows[False], rows[True], strict=True):
        assert abs(fast["p_c"] - exact["p_c"]) <= P_C_TOLERANCE
