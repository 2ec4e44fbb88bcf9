"""Metadata inside a `.tflite` file, so a model file copied alone still knows itself.

    content = embed(content, {"classes": [...], "presence_threshold": 0.5, ...})
    read(path_or_bytes)    -> the dict, or None for a file without it

A TFLite model (a FlatBuffer, `schema.fbs`) has a `metadata` table: named
entries that each point at one of the model's buffers. The converter itself
writes two (`min_runtime_version`, `CONVERSION_METADATA`); TFLite Metadata
(tflite-support) writes `TFLITE_METADATA` the same way. Interpreters skip
entries they do not know, so any LiteRT loads the file as before. We add one
entry, `locnet_tf`, whose buffer holds our metadata as UTF-8 JSON.

Why not TFLite Metadata itself: its writer (tflite-support) has had no release
for current Python versions, and its schema has no place for what a
single-object model needs (presence threshold, box layout, resize method);
a JSON entry keeps the same mechanism without the dependency. The FlatBuffer
is read and re-packed with the schema that ships inside `ai_edge_litert`
(`schema_py_generated`, `tools.flatbuffer_utils`), so this module needs LiteRT
but not TensorFlow.
"""

import json
import os
import struct

NAME = "locnet_tf"  # the metadata entry's name
FORMAT_VERSION = 1


def embed(content, metadata):
    """Returns `.tflite` bytes with `metadata` (a JSON-able dict) stored inside.

    An entry of the same name already there is replaced, so embedding twice
    leaves one. Everything else (graph, weights, signatures, the converter's
    own metadata) is kept.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    payload = json.dumps({"locnet_tf_metadata_version": FORMAT_VERSION, **metadata}, sort_keys=True)
    buffer = schema.BufferT()
    buffer.data = list(payload.encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = NAME
    entry.buffer = len(model.buffers) - 1
    # A stale entry would leave its buffer behind: harmless, a few hundred bytes.
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read(model):
    """The metadata stored by `embed`, or None when the file has none.

    Args:
        model: path of a `.tflite` file, or its bytes.

    Raises:
        ValueError: not a TFLite FlatBuffer, or a `locnet_tf` entry that is not
            valid JSON.
    """
    from ai_edge_litert import schema_py_generated as schema

    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        where = "model bytes"
    else:
        where = os.fspath(model)
        with open(where, "rb") as f:
            data = f.read()
    # The FlatBuffer file identifier of TFLite models, at bytes 4..8.
    if data[4:8] != b"TFL3":
        raise ValueError(f"{where}: not a TFLite model (no TFL3 identifier).")
    try:
        raw = _find(schema.Model.GetRootAs(data, 0), data)
    except (struct.error, IndexError, TypeError, ValueError, AttributeError) as error:
        # The FlatBuffer's offsets point past its end or nowhere: a cut or damaged file.
        raise ValueError(f"{where}: not a readable TFLite model ({error}): truncated or damaged?") from None
    if raw is not None:
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{where}: its {NAME!r} metadata is not valid JSON: {error}") from None
    return None


# A model has a few metadata entries; a count beyond this is a damaged file
# (looping over it would take hours).
_MAX_ENTRIES = 1000


def _find(root, data):
    """The bytes of the `locnet_tf` metadata entry, or None."""
    count = root.MetadataLength()
    if count > _MAX_ENTRIES:
        raise ValueError(f"{count} metadata entries")
    for i in range(count):
        entry = root.Metadata(i)
        if _name(entry.Name()) != NAME:
            continue
        buffer = root.Buffers(entry.Buffer())
        if buffer.Offset() > 1:  # a large model's buffer, stored after the FlatBuffer
            if buffer.Offset() + buffer.Size() > len(data):
                raise ValueError("a metadata buffer runs past the end of the file")
            return data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        return buffer.DataAsNumpy().tobytes()
    return None
