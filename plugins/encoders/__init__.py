"""Built-in encoder plugins, one per kind of model library.

``hf`` (package `harness_plugins.encoders.hf`) serves the transformers families,
``open-clip`` (module `harness_plugins.encoders.open_clip`) the open_clip text
towers.  Each registers through its own ``harness.plugins`` entry point, exactly
as a third-party encoder plugin would, and is built from `harness.encoding`.
"""
