"""A command resolves its data spec once (`data.sources.Source`) and every step reads that one."""

import json

import numpy as np
import pytest
from PIL import Image

from locnet_tf.train import run as train_lib
from locnet_tf.train import __main__ as train_main
from locnet_tf.data import pipeline, sources

# Small and quick: a from-scratch backbone (the recipe's `photos` branch), a few steps.
SMALL = [
    "--backbone", "simple", "--image-size", "32", "--filters", "4,8,8,8", "--head-channels", "8",
    "--head-units", "16", "--epochs", "1", "--steps-per-epoch", "1",
    "--steps-per-execution", "1", "--validation-steps", "1",
    "--batch-size", "4", "--progressive-share", "0", "--warmup-epochs", "0", "--jit-compile", "false",
]  # fmt: skip


def _csv_set(folder, n=50):
    """`n` small PNGs with one box each (every fifth a background image) and their CSV."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        name = f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / name)
        rows.append(f"{name},,,,," if i % 5 == 0 else f"{name},4,6,30,28,{'cat' if i % 2 else 'dog'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{folder / 'labels.csv'}"


@pytest.fixture
def reads(monkeypatch):
    """Counts the CSV reader's calls (`load_source` looks the reader up at each call)."""
    calls = []
    reader = sources.READERS["csv"]

    def counting(*args, **kwargs):
        calls.append(args[0])
        return reader(*args, **kwargs)

    monkeypatch.setitem(sources.READERS, "csv", counting)
    return calls


def test_one_training_reads_the_file_source_once(tmp_path, reads, capsys):
    spec = _csv_set(tmp_path / "photos")
    out = tmp_path / "run"
    # --preset auto: the recipe profiles the data, then train, validation, the test-split check,
    # calibration and the test evaluation read it: six reads before, one now.
    assert train_main.main(["--preset", "auto", "--data", spec, "--out", str(out), "--quiet", *SMALL]) == 0
    assert len(reads) == 1, reads
    report = json.loads((out / "report.json").read_text())
    assert report["data"] == spec and report["evaluate_config"]["data"] == spec  # the spec, not the object
    assert "Recipe: photos" in capsys.readouterr().out


def test_python_api_without_a_source_still_reads_once(tmp_path, reads):
    from locnet_tf.core import config as config_lib

    spec = _csv_set(tmp_path / "photos")
    config = config_lib.preset("smoke", data=spec, epochs=1, steps_per_epoch=1, validation_steps=1, batch_size=4)
    result = train_lib.train(config, out=str(tmp_path / "run"), verbose=0)
    assert result["report"] is not None and len(reads) == 1


def _rows(dataset):
    return [(ex["path"], tuple(ex["box"]), int(ex["class_id"]), bool(ex["present"])) for ex in dataset]


def test_a_source_yields_the_same_examples_as_its_spec(tmp_path):
    spec = _csv_set(tmp_path / "photos")
    source = sources.resolve(spec, skip_bad=False)
    for split in ("train", "validation", "test"):
        by_spec, names = pipeline.examples(spec, split)
        by_source, source_names = pipeline.examples(source, split)
        assert names == source_names == ("cat", "dog")
        assert _rows(by_spec.as_numpy_iterator()) == _rows(by_source.as_numpy_iterator())
        images = [ex["image"] for ex in by_source.as_numpy_iterator()]
        assert np.array_equal(np.stack(images), np.stack([ex["image"] for ex in by_spec.as_numpy_iterator()]))
    # Other class names (a model's, at evaluation) read the data anew with them: ids follow the names.
    _, names = pipeline.examples(source, "train", class_names=["dog", "cat"])
    assert names == ("dog", "cat")
    by_spec, _ = pipeline.examples(spec, "train", class_names=["dog", "cat"])
    by_source, _ = pipeline.examples(source, "train", class_names=["dog", "cat"])
    assert _rows(by_spec.as_numpy_iterator()) == _rows(by_source.as_numpy_iterator())


def test_a_source_for_other_options_is_not_reused(tmp_path):
    from locnet_tf.core import config as config_lib

    spec = _csv_set(tmp_path / "photos")
    config = config_lib.preset("smoke", data=spec)
    source = sources.for_config(config)
    assert sources.for_config(config, source) is source
    assert sources.for_config(config_lib.preset("smoke", data=spec, skip_bad=True), source) is not source
    assert sources.for_config(config_lib.preset("smoke"), source).spec == "synthetic/tiny"
