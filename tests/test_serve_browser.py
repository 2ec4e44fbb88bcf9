"""The page of `python -m locnet_tf.serve` in a real headless browser (issue 30).

Debian's `chromium` driven by Selenium through `/usr/bin/chromedriver`, both
from apt (`.ci/run` installs them): nothing downloads a browser build, and
Selenium Manager is never asked for one. The server runs as the command does,
in a subprocess on 127.0.0.1 and a free port. Where chromium, chromedriver or
selenium is missing, the tests skip and say which.

One browser for the module: a photo (its JSON compared with `predict` on the
same file), a bad upload, a generated video played through, the webcam
(Chromium's fake camera).
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from bad_input_data import make_photo, tiny_model, tiny_tflite
from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow


def _missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install {package})"
    return None


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_browser")
    return tiny_tflite(tiny_model(root / "tiny.keras"), root / "tiny.tflite")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "locnet_tf.serve", str(model), "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                assert json.load(answer)["status"] == "ok"
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.communicate()[0]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        pytest.skip(f"no headless browser: {missing}")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it asked, must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root
        "--disable-dev-shm-usage",
        "--use-fake-device-for-media-stream",  # a generated camera picture
        "--use-fake-ui-for-media-stream",  # camera permission granted without asking
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=30, what="the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception as error:  # the page's own status says why, in the failure message
        status = driver.find_element("id", "status").text
        raise AssertionError(f"{what}: timed out ({error!r}); the page's status: {status!r}") from None


def _state(driver):
    return driver.execute_script("return document.body.dataset.state || ''")


def _open_page(driver, url):
    driver.get(url)
    _wait(driver, lambda d: _state(d) == "ready", what="the model card")


def _set_threshold(driver, value):
    driver.execute_script(
        "const s = document.getElementById('threshold'); s.value = arguments[0];s.dispatchEvent(new Event('input'));",
        str(value),
    )


def test_photo_box_matches_predict(browser, server, model, tmp_path):
    from locnet_tf import predict

    photo = tmp_path / "street.jpg"
    make_photo(photo, 3, size=(120, 160))
    _open_page(browser, server)
    card = browser.find_element("id", "card").text
    assert "car, pedestrian" in card and "32 × 32" in card
    _set_threshold(browser, 0)  # an untrained model: with threshold 0 its box is drawn
    browser.find_element("id", "photo-input").send_keys(str(photo))
    _wait(browser, lambda d: _state(d) == "photo-done", what="the photo's answer")
    shown = json.loads(browser.find_element("id", "result").text)
    (expected,) = predict.predict_images(str(model), [str(photo)], presence_threshold=0.0)
    assert shown["present"] and expected["present"]
    for key in ("p_c", "class_score", "score", "box", "box_xyxy", "box_pixels", "class_scores"):
        np.testing.assert_allclose(shown[key], expected[key], atol=1e-6, err_msg=key)
    for key in ("class_id", "class_name", "image_size"):
        assert shown[key] == expected[key], key
    assert shown["image"] == photo.name  # the upload's name (predict's line holds the path)
    # The box is drawn where the answer says: the canvas has the photo's size, and red on the box's edge.
    box = json.loads(browser.execute_script("return document.getElementById('canvas').dataset.box"))
    np.testing.assert_allclose(box, expected["box_pixels"], atol=1e-3)
    x1, y1, x2, y2 = box
    pixel = browser.execute_script(
        "const c = document.getElementById('canvas');"
        "return [c.width, c.height, ...c.getContext('2d').getImageData(arguments[0], arguments[1], 1, 1).data];",
        int(round((x1 + x2) / 2)),
        int(round(y2)),
    )
    assert pixel[:2] == [160, 120]
    assert pixel[2] > 200 and pixel[3] < 100, pixel  # the box's colour (#ff2d55), not the photo's


def test_bad_upload_shows_the_one_line_error(browser, server, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    _open_page(browser, server)
    browser.find_element("id", "photo-input").send_keys(str(bad))
    _wait(browser, lambda d: _state(d) == "error", what="the error")
    status = browser.find_element("id", "status")
    assert status.text == "notes.jpg: not a JPEG, PNG, GIF or BMP image"
    assert "error" in status.get_attribute("class")
    # The server goes on serving.
    with urllib.request.urlopen(f"{server}/healthz", timeout=5) as answer:
        assert json.load(answer)["status"] == "ok"


def _make_video(path, frames=20, size=(96, 128), rate=10):
    """A short VP8 `.webm` (every Chromium build plays it) of a square crossing a noisy picture."""
    import av

    rng = np.random.default_rng(0)
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
            x = 5 + 4 * i
            image[30:60, x : x + 30] = (200, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_plays_with_the_box_tracked(browser, server, tmp_path):
    clip = tmp_path / "clip.webm"
    _make_video(clip)
    _open_page(browser, server)
    _set_threshold(browser, 0)
    browser.find_element("id", "video-input").send_keys(str(clip))
    _wait(browser, lambda d: _state(d) == "video-ended", timeout=60, what="the video's end")
    frames = int(browser.execute_script("return document.getElementById('canvas').dataset.frames"))
    assert frames >= 3
    row = json.loads(browser.find_element("id", "result").text)
    # Steadied on the server: one session for the clip, its frames counted, timestamps from the video.
    assert row["source"].startswith("video-") and row["frame"] == frames - 1
    assert 0 < row["timestamp"] <= 2.0 + 1e-6
    assert row["image_size"] == [96, 128] and row["present"]
    assert browser.execute_script("return document.getElementById('canvas').width") == 128
    assert "frames/s" in browser.find_element("id", "rate").text


def test_webcam_draws_live_boxes_and_frames_per_second(browser, server):
    _open_page(browser, server)
    _set_threshold(browser, 0)
    browser.find_element("id", "webcam-button").click()
    _wait(
        browser,
        lambda d: int(d.execute_script("return document.getElementById('canvas').dataset.frames || 0")) >= 5,
        what="five webcam frames",
    )
    rate = browser.find_element("id", "rate").text
    assert float(rate.split(" frames/s")[0]) > 0, rate
    row = json.loads(browser.find_element("id", "result").text)
    assert row["source"].startswith("webcam-") and row["present"]
    height, width = row["image_size"]
    assert width > 0 and height > 0
    assert browser.execute_script("return document.getElementById('canvas').dataset.box")
    browser.find_element("id", "stop-button").click()
    _wait(browser, lambda d: _state(d) == "stopped", what="the stop")


def test_page_loads_nothing_from_elsewhere(browser, server):
    _open_page(browser, server)
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert sources and all(s.startswith(server) for s in sources), sources
    assert pathlib.Path(REPO / "locnet_tf" / "serve_static" / "index.html").is_file()
