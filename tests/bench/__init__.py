"""Benchmarks (``just bench``): Roost against raw Dramatiq on the same broker. Not tests:
no file here starts with ``test_``, and pytest's testpaths leave this folder out."""
