"""Real servers that the test suite starts for itself (see ``tests/servers/s3.py``)."""
