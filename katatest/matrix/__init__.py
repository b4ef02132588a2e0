"""The conformance matrix: cells, their configs, selection and sharding."""
