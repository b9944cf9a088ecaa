"""What to measure: a suite file's schema and loading, its expansion into cases, and the targets they run on.

Depends on nothing of the harness but ``bench.errors`` and the generator names; every stage reads these types.
"""
