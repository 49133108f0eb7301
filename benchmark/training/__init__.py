"""Models, the data on the device, the engine, checkpoints, teachers, one run, and the perf
harness.
"""
