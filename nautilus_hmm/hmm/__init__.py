"""Regime model: features, numpy forward filter, model artifact, policy; training in a worker.

Only `hmm.train` touches pomegranate/torch, and only inside functions that run in a
spawned worker or the CLI `train` command; every other module here needs numpy alone.
"""

