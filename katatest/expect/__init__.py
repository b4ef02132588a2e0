"""Step 7, expectations: what the suites derive from a generated argv and read from a booted guest."""
