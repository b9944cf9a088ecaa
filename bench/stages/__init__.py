"""The steps one case goes through, each a plain function over typed data: model -> build -> tune ->
measure (and paired against a baseline build) -> check -> record.

Stages know nothing of pytest, the worker process or the history; ``bench.run`` puts them in order.
"""
