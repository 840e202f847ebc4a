"""Routing written as Channels 4's routing and middleware pages write it.

``site`` is an ASGI application for ``tests/compat/test_routing.py``, which
drives it in-process and serves it with Daphne and uvicorn mounted under a
``root_path``.
"""
