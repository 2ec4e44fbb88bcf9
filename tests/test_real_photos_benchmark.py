"""benchmarks/real_photos.py: the hands363 proxy it cuts from hands_loc (issue 29's few-hundred-photo goal)."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import real_photos  # noqa: E402

HANDS = REPO.parent / "shared" / "data" / "hands_loc"


def _fake_voc(root, counts):
    lists = root / "hands_loc" / "ImageSets" / "Main"
    lists.mkdir(parents=True)
    for folder in ("JPEGImages", "Annotations"):
        (root / "hands_loc" / folder).mkdir()
    ids = {}
    for split, count in counts.items():
        ids[split] = [f"{split}_{i:04d}" for i in range(count)]
        (lists / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
    return ids


def test_subset_draws_the_training_photos_and_keeps_val_and_test(tmp_path, monkeypatch):
    monkeypatch.setitem(real_photos.SUBSETS, "hands5", ("hands_loc", 5, 0))
    ids = _fake_voc(tmp_path / "data_root", {"train": 20, "val": 4, "test": 6})
    spec = real_photos.make_subset(tmp_path / "data_root", tmp_path / "out", "hands5")
    target = tmp_path / "out" / "data" / "hands5"
    assert spec == f"voc:{target}"
    lists = {s: (target / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert len(lists["train"]) == 5 and set(lists["train"]) <= set(ids["train"])
    assert lists["val"] == ids["val"] and lists["test"] == ids["test"]
    # The photos and annotations are the whole set's, linked, not copied.
    for folder in ("JPEGImages", "Annotations"):
        assert (target / folder).is_symlink()
        assert (target / folder).resolve() == (tmp_path / "data_root" / "hands_loc" / folder).resolve()
    # The same draw every time (the proxy's figures are comparable between sessions).
    real_photos.make_subset(tmp_path / "data_root", tmp_path / "out", "hands5")
    assert (target / "ImageSets" / "Main" / "train.txt").read_text().split() == lists["train"]


def test_hands363_reads_as_363_178_312(tmp_path):
    if not (HANDS / "ImageSets" / "Main" / "train.txt").is_file():
        pytest.skip(f"real photos not found at {HANDS} (../shared/data is absent)")
    from locnet_tf.data import sources

    spec = real_photos.make_subset(HANDS.parent, tmp_path, "hands363")
    data = sources.load_source(spec, verify_images=False)
    counts = {split: len(records) for split, records in data.records.items()}
    assert counts == {"train": 363, "validation": 178, "test": 312}


def test_subset_refuses_a_folder_it_did_not_make(tmp_path, monkeypatch):
    monkeypatch.setitem(real_photos.SUBSETS, "hands5", ("hands_loc", 5, 0))
    _fake_voc(tmp_path / "data_root", {"train": 20, "val": 4, "test": 6})
    photos = tmp_path / "out" / "data" / "hands5" / "JPEGImages"
    photos.mkdir(parents=True)
    with pytest.raises(SystemExit, match="JPEGImages: exists and is not a link"):
        real_photos.make_subset(tmp_path / "data_root", tmp_path / "out", "hands5")
