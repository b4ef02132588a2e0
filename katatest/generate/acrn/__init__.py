"""Step 3 for ACRN: the acrn-dm command line of Kata 3.0.0's ``virtcontainers/acrn.go`` / ``acrn_arch_base.go``."""
