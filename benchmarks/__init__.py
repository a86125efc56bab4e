"""Benchmarks for panoply-async (issue 7, DESIGN §5).

Run ``python -m benchmarks [--quick] [--out DIR]`` from the repository root.
Every figure is printed next to a baseline measured in the same run, on the
same local SQS server (moto, in a process of its own) and with the same
records; speed is reported, never asserted.
"""
