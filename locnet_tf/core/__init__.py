"""The numpy core (floor 0 of docs/architecture.md): no TensorFlow, no Keras at import."""

__all__ = []
