"""Helpers the tests share: waiting for conditions (:mod:`tests.support.waiting`)."""
