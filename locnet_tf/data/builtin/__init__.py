"""The data made by the package itself: the `synthetic_road` and `procedural_objects` TFDS builders
(`synthetic`, `procedural`; each registers when its module is imported), the road scenes they draw
(`synthetic_draw`) and a generated clip with its true boxes (`synthetic_video`).
"""
