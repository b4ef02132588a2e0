"""Helpers of the fault-injection tests (tests/test_faults.py, tests/test_rootless.py)."""
