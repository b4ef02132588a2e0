"""Across the steps, the matrix: which cells (config + host facts) a run takes through them, selection, sharding."""
