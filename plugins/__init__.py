"""First-party ted-harness plugins (import name ``harness_plugins``).

Each module registers through the ``harness.plugins`` entry-point group,
exactly as a third-party plugin would.
"""
