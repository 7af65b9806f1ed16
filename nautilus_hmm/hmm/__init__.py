"""Regime model: features, numpy forward filter, model artifact, policy; training in a worker.

Daemon side (numpy only): bars, data, features, filter, model, runtime, policy, strategy
(the HmmStrategy), registry (versioned models and tags), service (the "models"
component: training schedule, hot swaps). pomegranate/torch are imported only inside
`hmm.train` functions that run in a spawned worker, or in the offline commands
(`hmm.cli` train; `nautilus_hmm.evaluate`, outside this package because it composes the
model with the backtest) — never in the daemon's process.
See docs/HMM.md and docs/MODEL_FORMAT.md.
"""
