"""What to measure: a suite file's schema and loading (``schema``), its expansion into cases (``case``), and the
targets they run on with the thread-count rule (``target``).

Depends on nothing of the harness but ``bench.errors`` and the generator names; every stage reads these types.
"""
