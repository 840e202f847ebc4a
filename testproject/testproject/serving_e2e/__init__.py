"""A project configuration for the serving end-to-end tests (tests/e2e/test_serving*).

It extends the demo project with worker channels, group and send views and
lifespan hooks; ``E2E_LAYER`` picks the channel layer and ``E2E_OUTPUT_DIR``
is where consumers and hooks record what they did, for the tests to read.
"""
