"""Video: sources, writing and reading clips, predict on video and a loopback stream, smoothing."""

import http.server
import io
import json
import threading
import time

import av
import numpy as np
import pytest
from PIL import Image

from locnet_tf.core import cli
from locnet_tf.evaluate import predictor as inference
from locnet_tf import predict
from locnet_tf.runtime import smoothing, source_specs, video, video_writer
from locnet_tf.data.builtin import synthetic_video
from locnet_tf.runtime.prediction import Prediction

FPS = 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 24-frame 96x128 H.264 clip of a moving synthetic car, and its truth."""
    path = tmp_path_factory.mktemp("clips") / "car.mp4"
    truth = synthetic_video.write_clip(path, 24, (96, 128), FPS, class_id=1, seed=0, absent_share=0.25)
    return path, truth


def test_a_written_clip_reads_back_frame_by_frame(clip):
    path, truth = clip
    assert len(truth) == 24 and 0 < sum(t["present"] for t in truth) < 24
    source = source_specs.expand_sources([path])[0]
    assert source.kind == "video"
    frames = list(source.frames())
    assert len(frames) == 24 and source.fps == FPS and source.total == 24
    assert [f.index for f in frames] == list(range(24))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(24) / FPS, atol=1e-6)
    assert frames[0].image.shape == (96, 128, 3) and frames[0].image.dtype == np.uint8
    # H.264 is lossy, but the decoded frames are the generated ones.
    generated = [image for image, _ in synthetic_video.frames(24, (96, 128), class_id=1, seed=0, absent_share=0.25)]
    assert np.abs(frames[5].image.astype(int) - generated[5]).mean() < 6
    strided = list(video.Source("video", str(path)).frames(stride=5))
    assert [f.index for f in strided] == [0, 5, 10, 15, 20]


def test_rates_that_are_not_whole_numbers_write_a_video(tmp_path):
    # A source that does not say its rate is taken at DEFAULT_RATE; with --stride 2
    # the annotated video runs at half that: 12.5 frames/s (and a float rate works too).
    for name, rate in (("default.mp4", video.DEFAULT_RATE / 2), ("float.mp4", 25 / 2)):
        with video_writer.VideoWriter(tmp_path / name, rate) as writer:
            for i in range(5):
                writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
        source = video.Source("video", str(tmp_path / name))
        assert len(list(source.frames())) == 5 and source.fps == 12.5
        assert len(list(source.frames(stride=2))) == 3 and source.fps == 6.25


def test_predict_a_video_writes_json_lines_and_an_annotated_mp4(smoke, clip, tmp_path, capsys):
    path, _ = clip
    model = smoke["export"] / "model_int8.tflite"
    out = tmp_path / "out"
    assert predict.main([str(model), str(path), "--out", str(out), "--stride", "2", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["frame"] for r in rows] == list(range(0, 24, 2))
    assert all(r["source"] == str(path) and r["video"] == str(out / "car.mp4") for r in rows)
    np.testing.assert_allclose([r["timestamp"] for r in rows], np.arange(0, 24, 2) / FPS, atol=1e-6)
    assert rows[0]["image_size"] == [96, 128] and rows[0]["class_name"] in ("pedestrian", "car", "motorcycle")
    assert "12 frames from 1 source" in captured.err and "frames/s" in captured.err and "car.mp4" in captured.err
    # The annotated video: every predicted frame, at the source rate / stride.
    with av.open(str(out / "car.mp4")) as written:
        stream = written.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == FPS / 2
        assert sum(1 for _ in written.decode(stream)) == 12
    # --max-frames stops early; --no-smooth gives the raw answers, with --exact-resize the Predictor's own.
    assert predict.main([str(model), str(path), "--max-frames", "3", "--no-smooth", "--quiet", "--exact-resize"]) == 0
    raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(raw) == 3
    predictor = inference.Predictor(model, num_threads=1)
    frames = list(video.Source("video", str(path)).frames())
    for row, frame in zip(raw, frames):
        assert row == {
            "source": str(path),
            "frame": frame.index,
            "timestamp": frame.timestamp,
            **predictor.predict(frame.image).to_dict(),
        }
    # The Predictor API gives the same smoothed answers as the command line.
    smoothed = [p for _, p in predictor.predict_video(path, stride=2)]
    assert [p.to_dict() for p in smoothed] == [{k: r[k] for k in p.to_dict()} for r, p in zip(rows, smoothed)]


def test_sources_expand_folders_globs_and_name_bad_ones(clip, tmp_path):
    path, _ = clip
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / "b" / "x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / "y.jpg")
    (tmp_path / "a" / "notes.txt").write_text("not a picture")
    (tmp_path / "a" / "car.mp4").write_bytes(path.read_bytes())
    found = source_specs.expand_sources([tmp_path / "a"])
    assert [(s.kind, s.spec.split("/a/")[-1]) for s in found] == [
        ("image", "b/x.png"),
        ("video", "car.mp4"),
        ("image", "y.jpg"),
    ]
    assert [s.spec for s in source_specs.expand_sources([str(tmp_path / "a" / "**" / "*.png")])] == [
        str(tmp_path / "a" / "b" / "x.png")
    ]
    kinds = [
        s.kind for s in source_specs.expand_sources(["0", "rtsp://camera.local/live", "http://127.0.0.1:1/x.mjpg"])
    ]
    assert kinds == ["camera", "stream", "stream"]
    with pytest.raises(FileNotFoundError, match="nothere.mp4: no such file"):
        source_specs.expand_sources([tmp_path / "nothere.mp4"])
    with pytest.raises(FileNotFoundError, match=r"\*.avi: no image or video file matches"):
        source_specs.expand_sources([str(tmp_path / "*.avi")])
    with pytest.raises(ValueError, match="notes.txt: not an image"):
        source_specs.expand_sources([tmp_path / "a" / "notes.txt"])
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.mp4: cannot open it as a video"):
        list(video.Source("video", str(tmp_path / "broken.mp4")).frames())


def test_command_line_reports_a_bad_source_in_one_line(smoke, tmp_path, capsys):
    model = str(smoke["export"] / "model_int8.tflite")
    assert cli.run(lambda argv: predict.main([model, str(tmp_path / "missing.mkv")])) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.mkv: no such file" in err and "Traceback" not in err
    assert cli.run(lambda argv: predict.main([model, "rtsp://127.0.0.1:9/none", "--quiet"])) == 1
    assert "rtsp://127.0.0.1:9/none: cannot open it as a stream" in capsys.readouterr().err


class _MJPEGHandler(http.server.BaseHTTPRequestHandler):
    """An IP camera's MJPEG stream (multipart/x-mixed-replace), a few frames long."""

    frames = []

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpeg in self.frames:
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            self.wfile.write(jpeg + b"\r\n")
            time.sleep(0.005)

    def log_message(self, *args):
        pass


def test_a_loopback_mjpeg_stream(smoke, clip, capsys):
    path, _ = clip
    frames = [f.image for f in video.Source("video", str(path)).frames()][:12]
    encoded = []
    for image in frames:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    _MJPEGHandler.frames = encoded
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MJPEGHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    started = time.monotonic()
    try:
        code = predict.main([str(smoke["export"] / "model_int8.tflite"), url, "--max-frames", "8", "--threads", "1"])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0 and time.monotonic() - started < 60
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 8 and all(r["source"] == url for r in rows)
    assert [r["frame"] for r in rows] == list(range(8))
    assert all(r["image_size"] == [96, 128] for r in rows)
    assert "8 frames from 1 source" in captured.err


# ----------------------------------------------------------------------------
# Smoothing.


def _prediction(p_c, box=(0.5, 0.5, 0.2, 0.2), scores=(0.1, 0.8, 0.1)):
    class_id = int(np.argmax(scores))
    return Prediction(
        present=p_c >= 0.5,
        p_c=p_c,
        class_id=class_id,
        class_name=str(class_id),
        class_score=scores[class_id],
        score=p_c * scores[class_id],
        box=list(box),
        box_xyxy=[0, 0, 0, 0],
        box_pixels=[0, 0, 0, 0],
        image_size=(100, 100),
        class_scores=list(scores),
    )


def test_presence_hysteresis():
    config = smoothing.SmoothingConfig(enter_frames=2, exit_frames=2, exit_threshold=0.3)
    smoother = smoothing.Smoother(0.5, ["a", "b", "c"], config)
    p_c = [0.1, 0.6, 0.2, 0.6, 0.7, 0.4, 0.35, 0.2, 0.6, 0.1, 0.2, 0.9]
    present = [smoother.update(_prediction(p), i / 30).present for i, p in enumerate(p_c)]
    # Enter after two frames >= 0.5 (frame 4); stay while >= 0.3 or for one frame
    # below it (7); leave after two frames below 0.3 (9, 10); 11 is one frame.
    assert present == [False, False, False, False, True, True, True, True, True, True, False, False]
    raw_flips = sum(a != b for a, b in zip([p >= 0.5 for p in p_c][1:], [p >= 0.5 for p in p_c][:-1]))
    flips = sum(a != b for a, b in zip(present[1:], present[:-1]))
    assert (raw_flips, flips) == (7, 2)
    with pytest.raises(ValueError, match="above the presence threshold"):
        smoothing.Smoother(0.5, ["a"], smoothing.SmoothingConfig(exit_threshold=0.6))


def test_box_smoothing_steadies_a_still_box_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    still = smoothing.Smoother(0.5, ["a", "b", "c"])
    truth = np.array([0.5, 0.5, 0.3, 0.2])
    raw = [truth + rng.normal(0, 0.01, 4) for _ in range(90)]
    steady = [still.update(_prediction(0.9, box), i / 30).box for i, box in enumerate(raw)]
    jitter = lambda boxes: np.abs(np.diff(np.asarray(boxes), axis=0)).mean()  # noqa: E731
    assert jitter(steady[10:]) < 0.5 * jitter(raw[10:])
    assert np.abs(np.mean(steady[10:], axis=0) - truth).max() < 0.005
    # A box moving at 0.6 image widths per second: followed with little lag.
    moving = smoothing.Smoother(0.5, ["a", "b", "c"])
    xs = 0.1 + 0.02 * np.arange(40)
    out = [moving.update(_prediction(0.9, (x, 0.5, 0.2, 0.2)), i / 30).box[0] for i, x in enumerate(xs)]
    assert abs(out[-1] - xs[-1]) < 0.02
    # A new appearance starts from its own box, not from where the last one left.
    moving.update(_prediction(0.0), 2.0)
    moving.update(_prediction(0.0), 2.1)
    again = moving.update(_prediction(0.9, (0.2, 0.2, 0.1, 0.1)), 2.2)
    assert again.present and np.allclose(again.box, (0.2, 0.2, 0.1, 0.1))
    # The class: one frame that prefers another class does not switch the label.
    labels = [
        moving.update(_prediction(0.9, (0.2, 0.2, 0.1, 0.1), scores), 2.3 + i / 30).class_id
        for i, scores in enumerate([(0.1, 0.8, 0.1)] * 5 + [(0.6, 0.3, 0.1)] + [(0.1, 0.8, 0.1)] * 2)
    ]
    assert labels == [1] * 8


def test_the_example_runs_an_int8_model_over_a_generated_video(smoke, tmp_path, capsys):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("video_int8", REPO / "examples" / "video_int8.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([str(smoke["export"] / "model_int8.tflite"), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "(uint8)" in printed and "presence right in" in printed and "of 90 frames" in printed
    with av.open(str(tmp_path / "car_annotated.mp4")) as written:
        assert sum(1 for _ in written.decode(video=0)) == 90
    assert example.main([str(tmp_path / "none.tflite")]) == 1
