"""katatest: a conformance and integration harness for Kata Containers' hypervisor layer."""

__version__ = "0.1.0"
