"""The numpy core (floor 0 of docs/architecture.md): plain data and files, no TensorFlow, no Keras.

Its modules import nothing of the package above them. So far: `specs` (a data SPEC string).
"""

__all__ = ["specs"]
