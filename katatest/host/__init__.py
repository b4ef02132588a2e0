"""Step 2, host facts: the immutable facts of the host a config is rendered for, their bounds and probes."""
