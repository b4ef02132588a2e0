"""Step 4, conformance: Kata's own vectors (discovery, normalisation) compared with what step 3 renders."""
