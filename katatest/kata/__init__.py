"""Step 1, config loading: a Kata configuration TOML -> KataConfig, as Kata 3.0.0's katautils loads it."""
