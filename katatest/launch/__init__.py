"""Step 5, launch: argv -> launch plan with recorded overrides -> a supervised running VM (KVM probe, QMP, sweeping).

Submodules are imported on demand (the supervisor runs as a plain script and must stay light).
"""
