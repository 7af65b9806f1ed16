"""Regime model: features, numpy forward filter, model artifact, policy; training in a worker.

Only `hmm.train` touches pomegranate/torch, and only inside functions that run in a
spawned worker or the CLI `train` command; every other module here needs numpy alone.
"""

# The config package imports every section module (this package's config.py included)
# through its schema; loading it first keeps `import nautilus_hmm.hmm.config` from
# hitting that cycle half-way when it is the first import of a fresh interpreter.
import nautilus_hmm.config  # noqa: F401
