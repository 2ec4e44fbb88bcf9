"""The numpy core (floor 0 of docs/architecture.md): plain data and files, no TensorFlow, no Keras.

Its modules import nothing of the package above them; `errors` (the input errors) imports nothing
of the package at all. Among them: `errors`, `specs` (a data SPEC string) and `geometry` (every box
conversion and the letterbox, numpy and TensorFlow side by side).
"""

__all__ = ["errors", "geometry", "specs"]
