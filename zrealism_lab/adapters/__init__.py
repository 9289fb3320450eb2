"""Adapters users bring: LoRAs, textual-inversion embeddings and IP-Adapter.

``values`` checks the settings' shapes (no file access), ``files`` finds and hashes files, ``inspect`` reads their
keys (which format, made for which base), ``plan`` resolves a run's settings into an ``AdapterPlan`` before any model
loads, and ``engine.adapters`` applies a plan to the shared engine. This package imports nothing at import time, so
``settings`` can use ``values`` without a cycle.
"""
