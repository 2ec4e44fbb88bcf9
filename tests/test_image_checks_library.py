"""The image integrity checks on Pillow and simplejpeg (issue 28): same verdicts as the hand-written walks they replace.

`images._png_problem` is Pillow's `Image.verify()` plus a check of the IEND
chunk; `_reference_png_problem` below is the hand-written chunk walk (length,
type, data, CRC) it replaced, kept here as the oracle. Both must agree on a
corpus of damaged PNGs (cuts, flipped bytes in the signature and the header,
every chunk's CRC, length and type, trailers), and every PNG the checks accept
must decode in TensorFlow (libpng). The JPEG checks stay hand-written where no
library tells what they need; the tests at the end pin the library behaviour
that makes it so (if one starts failing, a library may have learned it).
"""

import io
import struct
import zlib

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageFile, PngImagePlugin

from locnet_tf.core import errors
from locnet_tf.core import image_files as images

SEED = 28


def _reference_png_problem(data):
    """The hand-written walk `images._png_problem` replaced: a chunk with a wrong CRC or cut short, up to IEND."""
    offset = len(images.PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            return "truncated"
        if zlib.crc32(data[offset + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            return "corrupt"
        if kind == b"IEND":
            return None
        offset = end + 4
    return "truncated"


def _pngs():
    """Base PNGs: RGB; palette with compressed text, iTXt, an ICC profile and EXIF; 16-bit grey."""
    rng = np.random.default_rng(SEED)
    picture = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((40, 30), Image.BILINEAR)
    out = {}
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    out["rgb"] = buffer.getvalue()
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 300, zip=True)
    info.add_itxt("key", "v" * 50, zip=True)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = 6
    picture.convert("P").save(buffer, "PNG", pnginfo=info, icc_profile=bytes(200), exif=exif.tobytes())
    out["palette_text"] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 65536, (20, 30)).astype(np.uint16)).save(buffer, "PNG")
    out["grey16"] = buffer.getvalue()
    return out


def _chunks(data):
    offset = 8
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        yield offset, data[offset + 4 : offset + 8], length
        offset += 12 + length


def _mutants(data, rng):
    """(what was done, bytes): cuts, flipped bytes (header, random spots, the end), each chunk's fields, trailers."""
    yield "as it is", data
    yield "empty", b""
    for cut in sorted({*range(0, min(len(data), 100), 3), *rng.integers(1, len(data), 30).tolist()}):
        yield f"cut at {cut}", data[:cut]
    spots = {*range(0, min(len(data), 80)), *rng.integers(0, len(data), 60).tolist(), *range(len(data) - 14, len(data))}
    for spot in sorted(spots):
        for bit in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[spot] ^= bit
            yield f"byte {spot} ^ {bit:#x}", bytes(flipped)
    for offset, kind, length in _chunks(data):
        for field, spot in (("CRC", offset + 8 + length), ("length", offset + 3), ("type", offset + 5)):
            flipped = bytearray(data)
            flipped[spot] ^= 0x04
            yield f"{kind!r} {field}", bytes(flipped)
    yield "a trailer after IEND", data + b"tool data" * 20
    yield "two PNGs end to end", data + data
    for spot in rng.integers(len(data), 2 * len(data), 12).tolist():  # bytes after IEND: never read
        flipped = bytearray(data + data)
        flipped[spot] ^= 0xFF
        yield f"two PNGs, byte {spot} of the second flipped", bytes(flipped)
    end = data.rfind(b"IEND") - 4
    yield "IEND with a length", data[:end] + b"\0\0\0\x04" + data[end + 4 :]
    yield "IEND with a wrong CRC, a good one after", data[:-1] + b"\x00" + images.PNG_END


def test_pillow_verify_and_the_hand_written_walk_agree_and_tensorflow_reads_what_is_accepted():
    import tensorflow as tf

    rng = np.random.default_rng(SEED)
    walked, accepted, refused, only_verify = 0, 0, 0, 0
    for base, data in _pngs().items():
        for how, mutant in _mutants(data, rng):
            what = f"{base}, {how}"
            if images.check_bytes(mutant) is None and mutant[:8] == images.PNG_SIGNATURE:
                try:
                    with images.open_image(io.BytesIO(mutant)):
                        opens = True
                except images.PILLOW_ERRORS:
                    opens = False
                if opens:  # where the walk ran: after the header checks, before the decode
                    walked += 1
                    ours, reference = images._png_problem(mutant), _reference_png_problem(mutant)
                    assert (ours is None) == (reference is None), f"{what}: Pillow says {ours}, the walk {reference}"
                    if reference:
                        try:
                            with images.open_image(io.BytesIO(mutant)) as opened:
                                opened.load()
                            only_verify += 1  # damage Pillow's load() decodes past: verify() finds it
                        except images.PILLOW_ERRORS:
                            pass
                    if ours:  # the two kinds of problem keep their words
                        start = "PNG image is truncated" if reference == "truncated" else "PNG data is corrupt"
                        assert ours.startswith(start) or "IEND" in ours, f"{what}: {ours}"
            try:
                images.inspect(mutant, "m.png")
            except errors.ImageError as error:
                refused += 1
                assert error.name == "m.png" and "BytesIO" not in error.problem, f"{what}: {error}"
                continue
            accepted += 1
            decoded = tf.io.decode_png(mutant, channels=3)  # libpng: raises on what it refuses
            assert tuple(decoded.shape[:2]) == Image.open(io.BytesIO(mutant)).size[::-1], what
    counts = (walked, accepted, refused, only_verify)  # 542, 45, 1130, 76 with this seed
    assert walked > 300 and accepted > 40 and refused > 1000 and only_verify > 20, counts


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_bad_crc(data, kind):
    for offset, found, length in _chunks(data):
        if found == kind:
            spot = offset + 8 + length
            return data[:spot] + bytes([data[spot] ^ 1]) + data[spot + 1 :]
    raise AssertionError(f"no {kind!r} chunk")


def test_each_kind_of_png_damage_is_refused_naming_the_file():
    data = _pngs()["rgb"]
    # An image-data chunk's CRC: Pillow's load() alone decodes it (why verify() is needed) ...
    bad_idat = _with_bad_crc(data, b"IDAT")
    with Image.open(io.BytesIO(bad_idat)) as opened:
        opened.load()
    # ... libpng refuses it, and so does the check, with verify=True only (the header alone does not show it).
    with pytest.raises(errors.ImageError, match=r"^p\.png: PNG data is corrupt: .*IDAT"):
        images.inspect(bad_idat, "p.png")
    assert images.inspect(bad_idat, "p.png", verify=False).format == "PNG"
    # An ancillary chunk after the image data (Pillow writes tEXt before it: moved there by hand).
    iend = data.rfind(b"IEND") - 4
    late_text = data[:iend] + _chunk(b"tEXt", b"note\0hello") + data[iend:]
    assert images.inspect(late_text, "t.png").format == "PNG"
    with pytest.raises(errors.ImageError, match=r"^t\.png: PNG data is corrupt: .*tEXt"):
        images.inspect(_with_bad_crc(late_text, b"tEXt"), "t.png")
    # A chunk before the image data: Pillow's open() refuses it; the header is damaged.
    with pytest.raises(errors.ImageError, match=r"^h\.png: cannot be read: its header is damaged$"):
        images.inspect(_with_bad_crc(data, b"IHDR"), "h.png", verify=False)
    # IEND, which verify() does not read: a length, or a wrong CRC before a trailer holding a good one.
    for how, mutant in (
        ("length", data[:iend] + b"\0\0\0\x04" + data[iend + 4 :]),
        ("crc", data[:-1] + b"\x00" + images.PNG_END),
    ):
        with pytest.raises(errors.ImageError, match=r"PNG data is corrupt \(its IEND chunk"):
            images.inspect(mutant, f"{how}.png")
    # An image-data chunk longer than the file (a good IEND found in a trailer).
    offset, _, length = next(c for c in _chunks(data) if c[1] == b"IDAT")
    longer = data[:offset] + struct.pack(">I", length + 10**6) + data[offset + 4 :] + images.PNG_END
    with pytest.raises(errors.ImageError, match=r"PNG image is truncated \(a chunk runs past the end of the file\)"):
        images.inspect(longer, "l.png")
    # Cut, and empty: the file's end, read before any decoder.
    for verify in (False, True):
        with pytest.raises(errors.ImageError, match=r"^c\.png: PNG image is truncated \(no IEND chunk\)$"):
            images.inspect(data[: len(data) // 2], "c.png", verify=verify)
        with pytest.raises(errors.ImageError, match=r"^e\.png: image file is empty$"):
            images.inspect(b"", "e.png", verify=verify)


def test_a_file_is_read_by_its_content_not_its_name(tmp_path):
    png, jpeg = _pngs()["rgb"], io.BytesIO()
    Image.open(io.BytesIO(png)).save(jpeg, "JPEG")
    for name, data, fmt in (("png.jpg", png, "PNG"), ("jpeg.png", jpeg.getvalue(), "JPEG"), ("png.gif", png, "PNG")):
        (tmp_path / name).write_bytes(data)
        assert images.inspect(data, name).format == fmt
        with Image.open(io.BytesIO(data)) as opened:
            np.testing.assert_array_equal(images.read_image(tmp_path / name), np.asarray(opened.convert("RGB")))
    (tmp_path / "cut.jpg").write_bytes(png[:100])  # the content's problem, whatever the name says
    with pytest.raises(errors.ImageError, match=r"cut\.jpg: PNG image is truncated"):
        images.read_image(tmp_path / "cut.jpg")


@pytest.fixture
def decodes(monkeypatch):
    """Sizes of the images Pillow decodes (an `ImageFile.load` with tiles left to read)."""
    found, real = [], ImageFile.ImageFile.load

    def load(self):
        if self.tile:
            found.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return found


def test_read_image_decodes_a_png_gif_or_bmp_once(tmp_path, decodes):
    pixels = np.random.default_rng(SEED).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = 6
    for name, kwargs in (("a.png", {}), ("turned.png", {"exif": exif.tobytes()}), ("a.gif", {}), ("a.bmp", {})):
        Image.fromarray(pixels).save(tmp_path / name, **kwargs)
        decodes.clear()
        image = images.read_image(tmp_path / name)
        assert decodes == [(40, 30)], name
        with Image.open(tmp_path / name) as opened:
            expected = np.asarray(opened.convert("RGB"))
        np.testing.assert_array_equal(image, np.rot90(expected, -1) if name == "turned.png" else expected)
    decodes.clear()
    images.inspect((tmp_path / "a.png").read_bytes(), "a.png", verify=False)
    assert decodes == []  # the header alone


# ----------------------------------------------------------------------------
# What the libraries do not tell, so the JPEG header walk stays (images.jpeg_is_complete, _jpeg_header).


def _jpeg():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_only_a_whole_decode_finds_a_cut_jpeg_so_the_header_only_check_walks_the_markers():
    data = _jpeg()
    cut = data[: len(data) - 2]  # only the end marker missing
    header = simplejpeg.decode_jpeg_header(cut)  # the header reads fine ...
    assert header[:2] == (64, 64)
    with pytest.raises(ValueError, match="Premature end of JPEG file"):  # ... a decode finds it
        simplejpeg.decode_jpeg(cut, min_factor=8, min_height=1, min_width=1)
    with Image.open(io.BytesIO(cut)) as opened:  # Pillow's header parse neither
        assert opened.size == (64, 64) and opened.tile[0][2] == 0  # (it names no scan offset: libjpeg reads it all)
    for verify in (False, True):  # the marker walk, from the bytes alone
        with pytest.raises(errors.ImageError, match=r"^c\.jpg: JPEG image is truncated \(no end-of-image marker\)$"):
            images.inspect(cut, "c.jpg", verify=verify)


def test_pillow_decodes_a_damaged_jpeg_silently_and_strict_libjpeg_names_no_position():
    data = _jpeg()
    sos = data.find(b"\xff\xda")
    middle = (sos + len(data)) // 2
    damaged = data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 16]) + data[middle + 16 :]
    with Image.open(io.BytesIO(damaged)) as opened:
        opened.load()  # no complaint: why JPEGs are checked by simplejpeg
    with pytest.raises(errors.ImageError, match=r"JPEG data is corrupt: Corrupt JPEG data"):
        images.inspect(damaged, "d.jpg")
    # Stray bytes between header segments: libjpeg says how many, not where (the walk finds them to skip).
    junk = data[:sos] + b"\x00\x12\x34" + data[sos:]
    with pytest.raises(ValueError, match=r"^Corrupt JPEG data: 3 extraneous bytes before marker 0xda$"):
        simplejpeg.decode_jpeg(junk, min_factor=8, min_height=1, min_width=1)
    assert images._jpeg_header(junk)[1] == [(sos, sos + 3)]
    assert images.inspect(junk, "j.jpg").format == "JPEG"
