"""Class names for the readers: class_map and unknown labels (`ClassResolver`), classes no split trains, label case."""

import numpy as np
from locnet_tf.core.config import UNKNOWN_POLICIES
from locnet_tf.core.errors import DataError


class ClassResolver:
    """Maps the data's labels to class ids (see the module docstring for the rules).

    Args:
        data_labels: labels found in (or declared by) the data, in reader order.
        class_names: user-given class list, or None to take it from the data.
        class_map: dict label -> new label or None (ignore), or None.
        unknown: "error" or "ignore_object".
        sort: bool. Sort the class names taken from the data.
    """

    def __init__(self, data_labels, class_names=None, class_map=None, unknown="error", sort=False):
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"`unknown` must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
        self.class_map = dict(class_map or {})
        self.unknown = unknown
        self.from_data = class_names is None
        if class_names is not None:
            names = tuple(str(n) for n in class_names)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"`class_names` must be unique and non-empty, got {list(names)}.")
        else:
            mapped = [self.map_label(label) for label in data_labels]
            names = tuple(dict.fromkeys(m for m in mapped if m is not None))
            if sort:
                names = tuple(sorted(names))
        self.class_names = names
        self._index = {name: i for i, name in enumerate(names)}

    def map_label(self, label):
        label = str(label)
        return self.class_map.get(label, label)

    def resolve(self, label, origin):
        """Class id of `label`, or None when the object is to be ignored.

        Raises:
            DataError: for an unknown label when `unknown="error"`.
        """
        mapped = self.map_label(label)
        if mapped is None:
            return None
        if mapped in self._index:
            return self._index[mapped]
        if self.unknown == "ignore_object":
            return None
        shown = f"{label!r}" + (f" (mapped to {mapped!r})" if mapped != label else "")
        raise DataError(
            f"{origin}: unknown label {shown}; classes are {list(self.class_names)}. "
            "Add it to `class_map` (map it to None to ignore such objects) or pass "
            "unknown='ignore_object'."
        )


def untrained_classes(records, class_names, name, from_data=True):
    """One line naming the classes without a training image (and where their images are), or None.

    `from_data`: the class names come from the data (left out with
    `--class-map NAME=`), not from the user (left out of `--classes`).

    Such a class is kept (the class list may be meant so: given with
    `--classes`, or declared by the data), but the model cannot learn it and
    scores 0 on it: said when the source is read, before training, not found
    in the report after it. A source without any training image (read to be
    evaluated) says nothing.
    """
    counts = {
        split: np.bincount([r.class_id for r in rows if r.present], minlength=len(class_names))
        for split, rows in records.items()
    }
    if not records.get("train"):
        return None
    missing, shown = [], []
    for class_id, class_name in enumerate(class_names):
        if counts["train"][class_id]:
            continue
        elsewhere = [f"{counts[s][class_id]} in {s}" for s in counts if s != "train" and counts[s][class_id]]
        missing.append(class_name)
        shown.append(f"{class_name!r} ({', '.join(elsewhere) or 'no image at all'})")
    if not missing:
        return None
    which = f"class {shown[0]}" if len(missing) == 1 else f"{len(missing)} classes: {', '.join(shown)}"
    them = "it" if len(missing) == 1 else "them"
    how = f"--class-map {','.join(f'{n}=' for n in missing)}" if from_data else "--classes"
    return (
        f"{name}: no training image of {which}; the model cannot learn {them} and will score 0 on {them}. "
        f"Move some of {'its' if len(missing) == 1 else 'their'} images to the train split, or leave {them} out "
        f"({how})"
    )


def check_label_case(resolver, entries, name):
    """Raises DataError when two class names taken from the data differ only in case.

    `Box` and `box` would silently become two classes, each with part of the
    objects. The message names where each spelling is first used.
    """
    by_fold = {}
    for class_name in resolver.class_names:
        by_fold.setdefault(class_name.casefold(), []).append(class_name)
    clashes = [names for names in by_fold.values() if len(names) > 1]
    if not clashes:
        return
    first_use = {}
    for entry in entries:
        for obj in entry.objects:
            first_use.setdefault(resolver.map_label(obj.label), obj.origin)
    spelled = ", ".join(f"{n!r} ({first_use[n] if n in first_use else 'in the class list'})" for n in clashes[0])
    merge = ",".join(f"{n}={clashes[0][0]}" for n in clashes[0][1:])
    raise DataError(
        f"{name}: labels {spelled} differ only in case and would be {len(clashes[0])} classes; "
        f"use one spelling, or merge them with --class-map {merge!r} (or give the classes with --classes)"
    )
