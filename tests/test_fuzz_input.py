"""Fuzzing the readers (issue 22): random cuts and byte flips of valid images and annotation files.

A bounded, seeded number of mutants goes through the check command and a
smoke training. Each must load correctly or fail with exactly one `error:`
line naming the file: never a traceback, a hang or a silent drop. Images the
check accepts must also decode in the training pipeline (without libjpeg's
"Corrupt JPEG data" on stderr, but for stray bytes between header segments)
and in predict's reader; images it refuses, predict's reader refuses too, and
`--skip-bad` training lists exactly those.
"""

import contextlib
import json
import logging
import pathlib
import signal

import numpy as np
import pytest

import bad_input_data as bad
from locnet_tf.core import image_files as images
from locnet_tf.core.errors import DataError

SEED = 22
IMAGE_MUTANTS = 24
ANNOTATION_MUTANTS = 16
TRAINED_ACCEPTED = 3  # annotation mutants that load and then train (the others fail fast, all of them run)
SECONDS = 120  # per command: longer is a hang
QUICK = bad.QUICK
FORMATS = {".jpg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP"}


# Bytes a damaged text file mostly gets: ones that keep it text, often still parseable.
TEXT_BYTES = b"0123456789.,-+ \n\t:;/<>\"'{}[]abcxyzE"


def mutate(data, rng, text=False):
    """A random cut or 1-8 changed bytes of `data`; returns (bytes, what was done).

    `text`: changed bytes are mostly `TEXT_BYTES` (an annotation file stays
    text often enough to reach the parser's checks beyond decoding).
    """
    data = bytearray(data)
    if rng.random() < 0.4:
        keep = int(rng.integers(0, len(data)))
        return bytes(data[:keep]), f"cut at {keep} of {len(data)}"
    spots = sorted(int(p) for p in rng.integers(0, len(data), int(rng.integers(1, 9))))
    for spot in spots:
        if text and rng.random() < 0.9:
            data[spot] = TEXT_BYTES[int(rng.integers(0, len(TEXT_BYTES)))]
        else:
            data[spot] = int(rng.integers(0, 256))
    return bytes(data), f"bytes {bytes(data[p] for p in spots)!r} at {spots}"


@contextlib.contextmanager
def deadline(what):
    """Fails the test instead of hanging when `what` takes longer than SECONDS."""

    def hang(*_):
        raise TimeoutError(f"{what} took more than {SECONDS} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(letter, argv, capfd, what):
    capfd.readouterr()
    with deadline(what):
        code = bad.run_command(letter, argv)
    out, err = capfd.readouterr()
    assert "Traceback" not in err, f"{what}: a traceback\n{err}"
    lines = bad.error_lines(err)
    assert (code, len(lines)) in ((0, 0), (1, 1)), f"{what}: exit {code} with {len(lines)} error lines\n{err}"
    return code, (lines[0] if lines else None), err


# ----------------------------------------------------------------------------
# Images.


@pytest.mark.slow
def test_damaged_images_load_correctly_or_fail_naming_the_file(tmp_path, capfd, caplog):
    rng = np.random.default_rng(SEED)
    root = tmp_path / "data"
    bases, rows = {}, ["filename,x1,y1,x2,y2,label"]
    for i, suffix in enumerate(FORMATS):
        path = root / f"base{i}{suffix}"
        box = bad.make_photo(path, i, fmt=FORMATS[suffix])
        if suffix == ".gif":  # GIF and BMP as they usually come: palette GIF, RGB BMP
            from PIL import Image

            Image.open(path).convert("P").save(path)
        bases[path] = box
    for path, box in bases.items():
        rows.append(f"{path.name},{','.join(map(str, box))},{bad.CLASSES[len(rows) % 2]}")
    mutants = {}
    for k in range(IMAGE_MUTANTS):
        base = list(bases)[k % len(bases)]
        data, how = mutate(base.read_bytes(), rng)
        path = root / f"mutant{k:02d}{base.suffix}"
        path.write_bytes(data)
        mutants[path] = (how, bases[base])
        rows.append(f"{path.name},{','.join(map(str, bases[base]))},{bad.CLASSES[k % 2]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")

    refused = {}
    for path, (how, box) in mutants.items():
        single = root / f"{path.stem}.csv"
        single.write_text(f"{path.name},{','.join(map(str, box))},car\n")
        what = f"check of {path.name} ({how})"
        code, line, _ = run("D", [f"csv:{single}", "--json", tmp_path / "r.json"], capfd, what)
        # predict's reader gives the same verdict on the same bytes
        try:
            images.read_image(path)
            read = None
        except DataError as error:
            read = str(error)
        if code:
            assert path.name in line, f"{what}: the error does not name the file: {line}"
            refused[path.name] = line
            assert read is not None and path.name in read, f"{what}: check refused it ({line}), predict read it"
        else:
            report = json.loads((tmp_path / "r.json").read_text())
            assert report["total"]["images"] == 1, f"{what}: loaded but dropped"
            assert read is None, f"{what}: check read it, predict refused it: {read}"
    assert 0 < len(refused) < len(mutants)  # the seed gives both kinds

    # Everything the check accepted decodes in the training pipeline, without libjpeg's warning.
    from locnet_tf.data import pipeline

    accepted = root / "accepted.csv"
    accepted.write_text("\n".join(r for r in rows[1:] if r.split(",")[0] not in refused) + "\n")
    capfd.readouterr()
    with deadline("decoding the accepted images"):
        dataset = pipeline.make_dataset(
            f"csv:{accepted}", "train", image_size=32, batch_size=8, splits=(1.0, 0.0, 0.0), augment=False, cache=False
        )
        count = sum(int(x.shape[0]) for x, _ in dataset)
    assert count == len(bases) + len(mutants) - len(refused)
    # (Stray bytes between header segments, which libjpeg skips with this warning and the same
    # pixels, are accepted: images.inspect. Any other "Corrupt JPEG data" is damage let through.)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "Corrupt JPEG data" in line]
    assert all(images.EXTRANEOUS_BYTES in line for line in warnings), warnings

    # A smoke training with --skip-bad lists exactly the refused ones; without it, one line names one.
    spec = f"csv:{root / 'labels.csv'}"
    with caplog.at_level(logging.WARNING, logger="locnet_tf.data"):
        code, _, err = run(
            "T",
            bad.train_argv(spec, tmp_path / "run", "--skip-bad", *QUICK),
            capfd,
            "training with --skip-bad",
        )
    assert code == 0
    from locnet_tf.data import sources

    skipped = sources.load_source(spec, skip_bad=True).skipped
    assert sorted(
        pathlib.Path(origin_line.split(": image file ")[1].split(":")[0]).name for _, origin_line in skipped
    ) == sorted(refused)
    assert any(f"skipped {len(refused)} entries" in r.getMessage() for r in caplog.records)
    code, line, _ = run(
        "T",
        bad.train_argv(spec, tmp_path / "run2", *QUICK),
        capfd,
        "training without --skip-bad",
    )
    assert code == 1 and any(name in line for name in refused), line


# ----------------------------------------------------------------------------
# Annotation files.


def _annotation_sources(root):
    """One source per format with one annotation file to damage: {spec: file}."""
    found = {}
    spec = bad.csv_source(root / "csv", count=8)
    found[spec] = root / "csv" / "labels.csv"
    spec = bad.yolo_source(root / "yolo", count=8)
    found[spec] = root / "yolo" / "labels" / "train" / "img00.txt"
    found[f"yolo:{root / 'yolo2'}"] = bad.yolo_source(root / "yolo2", count=8) and root / "yolo2" / "data.yaml"
    voc = root / "voc"
    (voc / "Annotations").mkdir(parents=True)
    for i in range(6):
        x1, y1, x2, y2 = bad.make_photo(voc / "JPEGImages" / f"v{i}.jpg", i)
        (voc / "Annotations" / f"v{i}.xml").write_text(
            f"<annotation><filename>v{i}.jpg</filename><size><width>64</width><height>48</height><depth>3</depth>"
            f"</size><object><name>{bad.CLASSES[i % 2]}</name><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>\n"
        )
    found[f"voc:{voc}"] = voc / "Annotations" / "v0.xml"
    coco = root / "coco"
    entries, annotations = [], []
    for i in range(6):
        x1, y1, x2, y2 = bad.make_photo(coco / "images" / f"c{i}.jpg", i)
        entries.append({"id": i, "file_name": f"c{i}.jpg", "width": 64, "height": 48})
        annotations.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (coco / "inst.json").write_text(
        json.dumps(
            {
                "images": entries,
                "annotations": annotations,
                "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "pedestrian"}],
            },
            indent=1,
        )
    )
    found[f"coco:{coco / 'inst.json'}"] = coco / "inst.json"
    return found


@pytest.mark.slow
def test_damaged_annotation_files_load_correctly_or_fail_naming_the_file(tmp_path, capfd):
    rng = np.random.default_rng(SEED + 1)
    found = _annotation_sources(tmp_path / "base")
    trained = 0
    for k in range(ANNOTATION_MUTANTS):
        spec, target = list(found.items())[k % len(found)]
        original = target.read_bytes()
        data, how = mutate(original, rng, text=True)
        target.write_bytes(data)
        try:
            what = f"{target.name} of {spec} ({how})"
            code, line, _ = run("D", [spec, "--json", tmp_path / "r.json"], capfd, f"check of {what}")
            if code:
                assert target.name in line, f"check of {what}: the error does not name the file: {line}"
            else:
                report = json.loads((tmp_path / "r.json").read_text())
                assert report["total"]["images"] >= 1
            if code or trained < TRAINED_ACCEPTED:
                trained += not code
                t_code, t_line, _ = run(
                    "T",
                    bad.train_argv(spec, tmp_path / f"run{k}", *QUICK),
                    capfd,
                    f"training on {what}",
                )
                if code:  # refused: training refuses it in the same words, before training
                    assert t_line == line, f"{what}: check and training disagree"
                else:  # loaded: it trains, unless the cut left a split it needs empty
                    assert not t_code or "no images in this split" in t_line, t_line
        finally:
            target.write_bytes(original)
