"""Hash splits and split fractions: an image of a source without its own splits goes to one by a
stable hash of its path."""

import hashlib


SPLITS = ("train", "validation", "test")


def hash_split(key, fractions, seed=0):
    """Assigns `key` (a relative path) to a split by a stable hash.

    Args:
        key: str. Identifies the image independently of the machine.
        fractions: (train, validation, test) fractions, summing to 1.
        seed: int. Changes the assignment as a whole.

    Returns:
        "train", "validation" or "test".
    """
    # SHA-256, not zlib.crc32: a CRC is linear, so names that differ in a few
    # characters ("images/face_image_0001.jpg" ... "_0040.jpg") landed in
    # lumps; 120 such Caltech names once gave a validation split of 0 images.
    # surrogateescape: a file name that is not UTF-8 (a Latin-1 name on Linux)
    # hashes by its bytes.
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8", "surrogateescape")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def check_fractions(splits):
    fractions = tuple(float(f) for f in splits)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"`splits` must be three fractions (train, validation, test) >= 0 summing to 1, got {splits}.")
    return fractions
