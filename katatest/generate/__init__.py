"""Step 3, generation: KataConfig + host facts -> per-VMM model -> argv (and VM JSON) with provenance."""
