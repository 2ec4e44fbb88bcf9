"""`csv:PATH` — rows of `filename,x1,y1,x2,y2,label` in pixel corners.

`PATH` is a CSV file or a folder. A folder means every `annotations/*.csv` in
it (or, with no `annotations/` subfolder, every `*.csv` directly in it).

Rows:

- `filename,x1,y1,x2,y2,label`: one object; (x1, y1) is the top-left corner,
  (x2, y2) the bottom-right one, in pixels. Several rows with the same filename
  are several objects on one image (see the `multi_object` policy).
- `filename,,,,,` (or just `filename`): a background image, no object.
- An optional first-line header is recognised when its coordinate columns are
  not numbers. It names the columns, in any order, and is honoured: each
  column is known by one of these names (any case; `_`, `-` and spaces
  ignored):

  ======  =======================================================
  file    `filename`, `file`, `image`, `image_name`, `path`, ...
  x1      `x1`, `xmin`, `left`
  y1      `y1`, `ymin`, `top`
  x2      `x2`, `xmax`, `right`
  y2      `y2`, `ymax`, `bottom`
  label   `label`, `class`, `name`, `class_name`, `category`
  ======  =======================================================

  plus, optionally, `width` and `height` (the image's size, checked against
  the file, as VOC's and COCO's are). So `filename,ymin,xmin,ymax,xmax,label`,
  `image,xmin,ymin,xmax,ymax,class` and TensorFlow's
  `filename,width,height,class,xmin,ymin,xmax,ymax` read right. A header with
  a name not in this table (`x,y,w,h`: another box format), a column named
  twice or one missing is refused, naming the header: the columns are never
  guessed. Without a header the order is `filename,x1,y1,x2,y2,label`.

Where the images are. The CSV's *root* is the folder holding it, or that
folder's parent when the CSV sits in a folder named `annotations`. A filename
is looked up, first match wins, as:

1. an absolute path, as is (a path anywhere, as a list of files may name);
2. `root/filename`;
3. `root/images/<label>/filename` (for background rows: skipped);
4. `root/images/<csv stem>/filename`;
5. `root/images/filename`.

So the Caltech photos shipped in `../shared/data/caltech101_loc`
(`annotations/<class>.csv`, filenames relative to `images/<class>/`) load as
they are with `csv:../shared/data/caltech101_loc`. Their `airplane.csv` line
118 has a zero-height box (`104,38,126,38`), which is bad data: load with
`skip_bad=True` (CLI `--skip-bad`) to leave that image out, reported.

Class names, unless given, are the labels found, sorted.
"""

import csv
import pathlib

from locnet_tf.data.readers import entries as su
from locnet_tf.data.readers import classes as classes_lib
from locnet_tf.data.readers import files as files_lib
from locnet_tf.core.errors import DataError


def csv_files(path):
    """The CSV files a `csv:PATH` spec names, sorted."""
    path = pathlib.Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"csv: {path} is neither a CSV file nor a folder")
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"csv: no .csv files in {folder}")
    return files


def csv_root(csv_path):
    """The folder image names are relative to (see the module docstring)."""
    folder = pathlib.Path(csv_path).parent
    return folder.parent if folder.name == "annotations" else folder


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(row):
    coords = [c.strip() for c in row[1:5]]
    return len(coords) == 4 and all(coords) and not any(_is_number(c) for c in coords)


# The columns of a row, in the order of a CSV without a header, and the names a header may give them.
COLUMNS = ("filename", "x1", "y1", "x2", "y2", "label")
COLUMN_NAMES = {
    "filename": ("filename", "file", "image", "imagename", "imagefile", "imagepath", "img", "path", "filepath"),
    "x1": ("x1", "xmin", "left"),
    "y1": ("y1", "ymin", "top"),
    "x2": ("x2", "xmax", "right"),
    "y2": ("y2", "ymax", "bottom"),
    "label": ("label", "class", "name", "classname", "category", "categoryname"),
    # Optional: the image's size, checked against the file.
    "width": ("width", "imagewidth"),
    "height": ("height", "imageheight"),
}
_ROLE_OF = {name: role for role, names in COLUMN_NAMES.items() for name in names}


def _column_order(row, origin):
    """The index of each column (`COLUMNS`, then "width"/"height" when present) in rows under this header.

    Raises:
        DataError: naming the header, for a name that is not known, a column
            named twice or one missing: the order is never guessed.
    """
    shown = ",".join(c.strip() for c in row)
    known = ", ".join(f"{role}: {'/'.join(names[:3])}" for role, names in COLUMN_NAMES.items())
    index = {}
    for position, cell in enumerate(row):
        name = cell.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
        role = _ROLE_OF.get(name)
        if role is None:
            what = f"column {cell.strip()!r} is" if cell.strip() else f"column {position + 1} has no name, so it is"
            raise DataError(
                f"{origin}: header {shown!r}: {what} not one this reader knows ({known}); "
                "name the columns so, or remove the header for the order filename,x1,y1,x2,y2,label"
            )
        if role in index:
            raise DataError(
                f"{origin}: header {shown!r}: columns {row[index[role]].strip()!r} and {cell.strip()!r} "
                f"both name the {role} column"
            )
        index[role] = position
    missing = [role for role in COLUMNS if role not in index]
    if missing:
        raise DataError(f"{origin}: header {shown!r} has no {' or '.join(missing)} column ({known})")
    return index


def _reorder(row, order):
    """A row under a header as `[filename, x1, y1, x2, y2, label]`; as it is when it does not fit the header."""
    if order is None or len(row) != len(order):
        return row  # `_parse_row` or `_size` says what is wrong with it
    return [row[order[role]] for role in COLUMNS]


def _size(row, order, origin):
    """The (height, width) a row under a header with width and height columns gives, or None."""
    if order is None:
        return None
    if len(row) != len(order) and len(row) > 1:
        raise DataError(f"{origin}: malformed row {row}: {len(row)} fields under a header of {len(order)}")
    if len(row) == 1 or "width" not in order or "height" not in order:
        return None
    width, height = row[order["width"]].strip(), row[order["height"]].strip()
    if not width and not height:
        return None
    try:
        size = (round(float(height)), round(float(width)))
    except ValueError:
        raise DataError(f"{origin}: malformed row {row}: width and height must be numbers") from None
    return size if min(size) > 0 else None


def _parse_row(row, origin):
    """Returns (filename, label or None, box or None) of one row, in `COLUMNS` order."""
    row = [c.strip() for c in row]
    if not row or not row[0]:
        raise DataError(f"{origin}: malformed row {row}: the filename is empty")
    if len(row) == 1:
        return row[0], None, None
    if len(row) != 6:
        raise DataError(
            f"{origin}: malformed row {row}: expected 6 fields "
            "filename,x1,y1,x2,y2,label (label and coordinates empty for background)"
        )
    filename, coords, label = row[0], row[1:5], row[5]
    if not label and not any(coords):
        return filename, None, None
    if not label:
        raise DataError(f"{origin}: malformed row {row}: a box without a label")
    if not all(coords):
        raise DataError(f"{origin}: malformed row {row}: label {label!r} without a full box")
    try:
        box = tuple(float(c) for c in coords)
    except ValueError:
        raise DataError(f"{origin}: malformed row {row}: coordinates must be numbers") from None
    return filename, label, box


def _folders(image_root, label, stem):
    """Where a row's filename is looked for (see the module docstring), in order."""
    folders = [image_root]
    if label:
        folders.append(image_root / "images" / label)
    return folders + [image_root / "images" / stem, image_root / "images"]


def read_csv(path, *, class_names=None, class_map=None, unknown="error", skip_bad=False, **options):
    """Reads a `csv:PATH` source.

    Args:
        path: a CSV file or a folder (see the module docstring).
        class_names: sequence of str, or None to use the sorted labels.
        class_map: dict label -> label or None (ignore those objects).
        unknown: "error" or "ignore_object", for labels not in `class_names`.
        skip_bad: bool. Skip bad rows and images instead of raising.
        **options: passed to `entries.build_source` (multi_object, splits,
            seed, box_tolerance, verify_images).

    Returns:
        SourceData.
    """
    path = pathlib.Path(path)
    root = path if path.is_dir() else path.parent
    problems = su.Problems(skip_bad)
    entries = {}  # image path (or missing name) -> ImageEntry, in file order
    labels = set()
    # Skipped rows (skip_bad) take their image along. A row is bad before its
    # image is looked up, so the image is known by what can be told of it:
    # the file its name finds (as the row's label and CSV file say where to
    # look), and (CSV file, name as written). Never by the bare name: every
    # class of a Caltech-style layout has its own image_0001.jpg.
    bad_images, bad_names = {}, {}  # resolved image path / (CSV file, name) -> why a row of it was skipped
    row_names = {}  # entry key -> the (CSV file, name) of each of its rows
    for csv_path in csv_files(path):
        name = files_lib.relative_name(csv_path, root)
        image_root = csv_root(csv_path)
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"{name}: cannot read the CSV file: {error}") from error
        order = None  # the columns' places when a header names them
        for line, raw in enumerate(rows, start=1):
            if not raw:
                continue
            if line == 1 and _is_header(raw):
                order = _column_order(raw, f"{name}:1")  # a header that cannot be read stops the file
                continue
            origin = f"{name}:{line}"
            row = _reorder(raw, order)
            row_name = (str(csv_path), row[0].strip())

            def taint(message, row=row, row_name=row_name, image_root=image_root, stem=csv_path.stem):
                bad_names.setdefault(row_name, message)
                label = row[5].strip() if len(row) >= 6 else ""
                image = files_lib.find_file(row_name[1], _folders(image_root, label, stem)) if row_name[1] else None
                if image is not None:
                    bad_images.setdefault(str(image.resolve()), message)

            with problems.entry(origin, on_skip=taint):
                size = _size(raw, order, origin)
                filename, label, box = _parse_row(row, origin)
                folders = _folders(image_root, label, csv_path.stem)
                image = files_lib.find_file(filename, folders)
                key = str(image.resolve()) if image else f"missing:{origin}"
                entry = entries.get(key)
                row_names.setdefault(key, []).append(row_name)
                if entry is None:
                    entry = entries[key] = su.ImageEntry(
                        path=image,
                        origin=origin,
                        # Whole paths: folders relative to the CSV's root (".")
                        # read as relative to the working directory.
                        missing=f"{filename!r} looked for as "
                        + ", ".join(dict.fromkeys(str(pathlib.Path(f) / filename.strip()) for f in folders)),
                    )
                if size is not None:
                    if entry.size is not None and entry.size != size:
                        raise DataError(
                            f"{origin}: width,height {size[1]},{size[0]} differ from {entry.size[1]},{entry.size[0]} "
                            f"given for {filename} at {entry.origin}"
                        )
                    entry.size = size
                if label is not None:
                    entry.objects.append(su.Annotation(label, box, "xyxy", origin))
                    labels.add(label)
                elif not entry.background:
                    entry.background = origin
    # A skipped row takes its whole image with it.
    for key, entry in entries.items():
        why = bad_images.get(key) or next((bad_names[n] for n in row_names.get(key, ()) if n in bad_names), None)
        if why:
            entry.bad = why
    resolver = classes_lib.ClassResolver(labels, class_names, class_map, unknown, sort=True)
    return su.build_source(entries.values(), resolver, problems, root=root, name=f"csv:{path}", **options)
