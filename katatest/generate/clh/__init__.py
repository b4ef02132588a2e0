"""Step 3 for Cloud Hypervisor: what Kata 3.0.0's ``virtcontainers/clh.go`` launches and sends."""
