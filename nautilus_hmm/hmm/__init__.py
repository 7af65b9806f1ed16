"""Regime model: features, numpy forward filter, model artifact, policy; training in a worker.

Daemon side (numpy only): data, features, filter, model, runtime, policy, strategy
(the HmmStrategy), registry (versioned models and tags), service (the "models"
component: training schedule, hot swaps). pomegranate/torch are imported only inside
`hmm.train` functions that run in a spawned worker, or in the offline commands
(`nautilus_hmm.models_cli` train; `nautilus_hmm.evaluate`), which live outside this
package: command-line code reads the config and calls the admin API, and evaluate composes
the model with the backtest — never in the daemon's process. Bars (`BarArrays`, resampling)
come from `marketdata`.
See docs/HMM.md and docs/MODEL_FORMAT.md.
"""
