"""A minimal project for the WebSocket benchmark.

``BENCH_IMPL`` (``ours`` or ``channels``) picks the implementation: the same
consumer code is imported from ``channels_app`` or from ``channels``.
``BENCH_LAYER`` / ``BENCH_CONFIG`` (a dotted path and JSON) pick the channel
layer; ``BENCH_DATABASES`` (JSON) gives a database layer its database.
"""
