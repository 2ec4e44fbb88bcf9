"""`python -m locnet_tf.serve`'s JSON API through Starlette's TestClient, and the SavedModel's
`serving_encoded` signature (issue 30). The page in a browser: tests/test_serve_browser.py."""

import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from bad_input_data import make_photo, tiny_model, tiny_tflite
from conftest import REPO

pytest.importorskip("starlette", reason="the serve app needs starlette (the base install brings it)")

FIELDS = ("p_c", "class_score", "score", "box", "box_xyxy", "box_pixels", "class_scores")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    keras_path = tiny_model(root / "tiny.keras")
    return {"keras": keras_path, "tflite": tiny_tflite(keras_path, root / "tiny.tflite"), "root": root}


@pytest.fixture(scope="module")
def photos(tiny):
    folder = tiny["root"] / "photos"
    made = []
    for i, (size, suffix) in enumerate(
        [((120, 160), ".jpg"), ((90, 70), ".png"), ((48, 64), ".gif"), ((33, 80), ".bmp")]
    ):
        make_photo(folder / f"p{i}{suffix}", i, size=size)
        made.append(folder / f"p{i}{suffix}")
    # A phone photo stored sideways: the EXIF tag says "rotate 90 degrees to show", and the answer is for the
    # photo as shown (60 x 100, not 100 x 60).
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = np.asarray(Image.open(made[0]).convert("RGB").resize((100, 60)))
    Image.fromarray(pixels).save(folder / "sideways.jpg", quality=95, exif=exif.tobytes())
    return made + [folder / "sideways.jpg"]


def _client(model, **options):
    from starlette.testclient import TestClient

    from locnet_tf import serve

    return TestClient(serve.build_app(serve.Service(model, **options)))


@pytest.fixture(scope="module")
def client(tiny):
    with _client(tiny["tflite"], workers=2) as client:
        yield client


def _close(a, b, atol=1e-6):
    for key in FIELDS:
        np.testing.assert_allclose(a[key], b[key], atol=atol, rtol=0, err_msg=key)
    for key in ("present", "class_id", "class_name", "image_size"):
        assert a[key] == b[key], key


def test_predict_agrees_with_the_predict_command(client, tiny, photos):
    # `python -m locnet_tf.predict`'s own JSON lines, from the command.
    lines = subprocess.run(
        [sys.executable, "-m", "locnet_tf.predict", str(tiny["tflite"]), *map(str, photos), "--quiet"],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    expected = [json.loads(line) for line in lines]
    assert len(expected) == len(photos)
    for photo, want in zip(photos, expected):
        data = photo.read_bytes()
        multipart = client.post("/predict", files={"file": (photo.name, data, "application/octet-stream")})
        raw = client.post(f"/predict?name={photo.name}", content=data)
        for answer in (multipart, raw):
            assert answer.status_code == 200, answer.text
            row = answer.json()
            _close(row, want)
            assert row["image"] == row["source"] == photo.name and row["frame"] == 0 and row["timestamp"] is None
            assert set(want) - {"image", "source"} <= set(row)


def test_runs_without_tensorflow(tiny, photos):
    # A fresh interpreter where TensorFlow and Keras cannot be imported, as after `pip install locnet_tf`.
    code = textwrap.dedent("""
        import json, sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tensorflow_datasets", "tf_keras"):
                    raise ImportError(f"{name} is blocked in this test")

        sys.meta_path.insert(0, Blocker())
        from starlette.testclient import TestClient
        from locnet_tf import serve

        client = TestClient(serve.build_app(serve.Service(sys.argv[1])))
        print(json.dumps(client.post("/predict?name=p.jpg", content=open(sys.argv[2], "rb").read()).json()))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny["tflite"]), str(photos[0])],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    from locnet_tf.runtime import tflite as runtime

    _close(json.loads(result.stdout), runtime.TFLitePredictor(tiny["tflite"]).predict(str(photos[0])).to_dict())


def test_sideways_photo_is_answered_as_shown(client, photos):
    row = client.post("/predict", content=photos[-1].read_bytes()).json()
    assert row["image_size"] == [100, 60]


def test_threshold_moves_presence_only(client, photos):
    data = photos[0].read_bytes()
    low = client.post("/predict?threshold=0", content=data).json()
    high = client.post("/predict?threshold=1", content=data).json()
    assert low["present"] and not high["present"]
    assert low["p_c"] == high["p_c"] and low["box"] == high["box"]


def test_model_card_and_health(client, tiny):
    card = client.get("/model").json()
    assert card["classes"] == ["car", "pedestrian"] and card["input_size"] == 32
    assert card["presence_threshold"] == 0.5 and card["resize"] == "stretch"
    assert card["metadata_source"] == "embedded" and card["quantization"] == "float32"
    assert card["file"] == "tiny.tflite" and len(card["source_sha256"]) == 64 and card["workers"] == 2
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    style = client.get("/static/style.css").text
    assert "http" not in page.text and "http" not in style and "@import" not in style  # nothing from elsewhere
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def _truncated(path, keep):
    return path.read_bytes()[:keep]


def _bad_uploads(tmp_path, photos):
    """(file name, bytes, status) of uploads that must be refused."""
    big = io.BytesIO()
    Image.new("RGB", (400, 300)).save(big, "PNG")
    return [
        ("empty.jpg", b"", 400),
        ("notes.jpg", b"just some text, not a picture", 400),
        ("cut.jpg", _truncated(photos[0], 2000), 400),
        ("cut.png", _truncated(photos[1], 3000), 400),
        ("pixels.png", big.getvalue(), 413),  # over LOCNET_TF_MAX_PIXELS (set below)
    ]


def test_bad_uploads_get_the_command_lines_one_line_error(client, tiny, photos, tmp_path, monkeypatch):
    from locnet_tf.core import cli
    from locnet_tf import predict

    monkeypatch.setenv("LOCNET_TF_MAX_PIXELS", "100000")
    monkeypatch.chdir(tmp_path)
    for name, data, status in _bad_uploads(tmp_path, photos):
        pathlib.Path(name).write_bytes(data)
        # What `python -m locnet_tf.predict MODEL NAME` prints after "error: ".
        with pytest.raises(Exception) as raised:
            predict.predict_images(str(tiny["tflite"]), [name])
        expected = cli.user_message(raised.value)
        assert expected and "\n" not in expected
        for answer in (
            client.post("/predict", files={"file": (name, data, "image/jpeg")}),
            client.post(f"/predict?name={name}", content=data),
        ):
            assert answer.status_code == status, (name, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {"error": expected}, name
        # ...and the server goes on serving.
        assert client.post("/predict", content=photos[0].read_bytes()).status_code == 200


def test_bad_requests_are_4xx_json(tiny, photos):
    with _client(tiny["tflite"], max_upload_bytes=10_000) as client:
        data = photos[0].read_bytes()
        assert 5000 < len(data) < 10_000
        cases = [
            (client.post("/predict?name=big.jpg", content=data * 300), 413, "big.jpg: upload is too large"),
            (
                client.post("/predict", files={"file": ("big.jpg", data * 2, "image/jpeg")}),
                413,
                "big.jpg: upload is too large",
            ),
            (client.post("/predict?threshold=2", content=b"x"), 400, "threshold must be a number in [0, 1], got '2'"),
            (client.post("/predict?threshold=nan", content=b"x"), 400, "threshold must be a number"),
            (client.post("/predict?session=s&timestamp=inf", content=b"x"), 400, "timestamp must be a number"),
            (client.post("/predict?session=s", content=b"x"), 400, "a session's frames need their timestamp"),
            (
                client.post("/predict", data={"note": "hi"}),
                400,
                "upload: not a JPEG, PNG, GIF or BMP image",
            ),
            (
                client.post(
                    "/predict",
                    content=b'--x\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--x--\r\n',
                    headers={"content-type": "multipart/form-data; boundary=x"},
                ),
                400,
                'no image in the form: send it as the file field "file"',
            ),
            (
                client.post(
                    "/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}
                ),
                400,
                "no image in the form",
            ),
        ]
        for answer, status, start in cases:
            assert answer.status_code == status, answer.text
            message = answer.json()["error"]
            assert message.startswith(start) and "\n" not in message, message
        assert client.get("/predict").status_code == 405
        assert client.post("/predict", content=data).status_code == 200


def test_video_sessions_are_steadied_as_the_video_path(client, tiny):
    from locnet_tf.runtime import tflite as runtime, smoothing

    # A square moving across eight frames, sent as PNG (lossless) with their timestamps.
    frames = []
    for i in range(8):
        path = tiny["root"] / f"frame{i}.png"
        make_photo(path, 5, size=(60, 80), box=(4 + 6 * i, 10, 30 + 6 * i, 40))
        frames.append(path)
    model = runtime.TFLitePredictor(tiny["tflite"])
    smoother = smoothing.Smoother(0.0, model.class_names)
    for i, path in enumerate(frames):
        row = client.post(f"/predict?session=clip&timestamp={i / 10}&threshold=0", content=path.read_bytes()).json()
        want = smoother.update(model.predict(str(path)), i / 10).to_dict()
        _close(row, want)
        assert row["source"] == "clip" and row["frame"] == i and row["timestamp"] == pytest.approx(i / 10)
    # Seeking back starts the smoothing afresh: the first frame's own answer again.
    again = client.post("/predict?session=clip&timestamp=0&threshold=0", content=frames[0].read_bytes()).json()
    first = smoothing.Smoother(0.0, model.class_names).update(model.predict(str(frames[0])), 0.0).to_dict()
    _close(again, first)


def test_no_interpreter_is_used_by_two_threads_at_once(tiny, photos):
    from locnet_tf import serve

    service = serve.Service(tiny["tflite"], workers=2)
    in_use, overlaps, lock = {}, [], threading.Lock()
    for key, predictor in enumerate(service.pool.predictors):
        original = predictor.predict

        def guarded(image, original=original, key=key):
            with lock:
                if in_use.get(key):
                    overlaps.append(key)
                in_use[key] = True
            time.sleep(0.005)  # long enough for another thread to try
            try:
                return original(image)
            finally:
                with lock:
                    in_use[key] = False

        predictor.predict = guarded
    data = photos[0].read_bytes()
    want = service.predict(data, "p.jpg")
    results = []

    def work():
        for _ in range(10):
            results.append(service.predict(data, "p.jpg"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not overlaps
    assert len(results) == 80 and all(r == want for r in results)
    assert set(in_use) == {0, 1}  # both interpreters did work


def test_the_command_serves_on_loopback(tiny, photos):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "locnet_tf.serve", str(tiny["tflite"]), "--port", str(port)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert (
            process.stderr.readline().strip() == f"serving {tiny['tflite']} at http://127.0.0.1:{port}/ (Ctrl-C stops)"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert json.load(answer)["status"] == "ok"
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict?name=p.jpg", data=photos[0].read_bytes(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["image_size"] == [120, 160]
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/predict?name=x.jpg", data=b"text", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 400
        assert json.load(refused.value) == {"error": "x.jpg: not a JPEG, PNG, GIF or BMP image"}
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode in (0, -15)  # stopped by the signal, cleanly


def test_command_line_errors_are_one_line(tiny, tmp_path, capsys):
    from locnet_tf.core import cli
    from locnet_tf import serve

    assert cli.run(serve.main, [str(tmp_path / "missing.tflite")]) == 1
    assert "error: No model at" in capsys.readouterr().err
    assert cli.run(serve.main, [str(tiny["tflite"]), "--workers", "0"]) == 1
    assert "error: --workers must be at least 1, got 0." in capsys.readouterr().err
    assert serve.build_parser().parse_args(["m.tflite"]).host == "127.0.0.1"  # this machine only, by default
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(tiny["tflite"].read_bytes()[:500])
    assert cli.run(serve.main, [str(damaged)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged}") and len(err.strip().splitlines()) == 2  # + the traceback hint


# ----------------------------------------------------------------------------
# The SavedModel's encoded-image signature.


def _test_photos(tmp_path, caltech, count=3):
    """Generated photos in every format, plus the first few Caltech test-split photos when present."""
    made = []
    for i, (size, suffix) in enumerate(
        [((120, 160), ".jpg"), ((90, 70), ".png"), ((48, 64), ".gif"), ((33, 80), ".bmp")]
    ):
        made.append(tmp_path / f"t{i}{suffix}")
        make_photo(made[-1], 10 + i, size=size)
    if caltech is not None:
        for folder in sorted((caltech / "images").iterdir()):  # a few of each class, some of them grey
            made += sorted(folder.glob("*.jpg"))[:count]
    return made


@pytest.fixture(scope="module")
def saved_models(tiny):
    """`{resize: loaded SavedModel}` of the tiny model, written by the export's `write_saved_model`."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from locnet_tf.export import convert as export_convert

    model = keras.models.load_model(tiny["keras"])
    loaded = {}
    for resize in ("stretch", "letterbox"):
        export_convert.write_saved_model(model, tiny["root"] / f"saved_model_{resize}", resize=resize)
        loaded[resize] = tf.saved_model.load(str(tiny["root"] / f"saved_model_{resize}"))
    return loaded


@pytest.mark.slow
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_encoded_signature_matches_serving_default(saved_models, tmp_path, resize, request):
    import tensorflow as tf

    from locnet_tf.core import image_files as images

    try:
        caltech = request.getfixturevalue("caltech_dir")
    except pytest.skip.Exception:
        caltech = None
    signatures = saved_models[resize].signatures
    encoded, default = signatures["serving_encoded"], signatures["serving_default"]
    paths = _test_photos(tmp_path, caltech)
    # Photos of several sizes in one batch.
    batch = encoded(encoded_images=tf.constant([p.read_bytes() for p in paths]))
    assert set(batch) == {"p_c", "box", "box_xyxy", "class_id", "class_scores"}
    compared = 0
    for i, path in enumerate(paths):
        if images.exif_orientation(path) != 1:
            continue  # EXIF is not applied by the encoded signature (see decode_encoded_image)
        want = default(images=tf.constant(images.read_image(path)[None]))
        for key in want:
            np.testing.assert_allclose(batch[key][i], want[key][0], atol=1e-4, err_msg=f"{path.name} {key}")
        compared += 1
    assert compared >= 4


@pytest.mark.slow
def test_encoded_signature_refuses_bad_bytes_in_the_command_lines_words(saved_models, tmp_path):
    import tensorflow as tf

    from locnet_tf.core import image_files as images

    encoded = saved_models["stretch"].signatures["serving_encoded"]
    photo = tmp_path / "p.jpg"
    make_photo(photo, 1, size=(120, 160))
    for data, problem in ((b"text", images.NOT_AN_IMAGE), (photo.read_bytes()[:2000], images.TRUNCATED_JPEG)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            encoded(encoded_images=tf.constant([data]))
