"""What tests and studies share: synthetic result files (``results``) and a loopback RPC fleet (``fleet``).

Never imported by a real run.
"""
