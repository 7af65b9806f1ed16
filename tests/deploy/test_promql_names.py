"""The PromQL name extractor the live-scrape check relies on."""

from __future__ import annotations

from tests.deploy.promql import exported_name, metric_names


def test_functions_keywords_labels_and_grouping_are_not_metric_names() -> None:
    expr = ('histogram_quantile(0.99, sum by (instance, job, le) (rate(event_loop_lag_seconds_bucket[5m]))) > 0.25 '
            'and on (instance, job) increase(journal_commits_total{result!="a b"}[5m]) == 0 '
            'unless on (instance) trading_state{state="HALTED"} == 1 or time() - model_last_trained_timestamp_seconds')
    assert metric_names(expr) == {"event_loop_lag_seconds_bucket", "journal_commits_total", "trading_state",
                                  "model_last_trained_timestamp_seconds"}


def test_grafana_variables_are_not_metric_names() -> None:
    assert metric_names('sum(rate(fills_total{instrument=~"$instrument"}[$__rate_interval]))') == {"fills_total"}


def test_histogram_series_belong_to_their_family() -> None:
    assert exported_name("event_loop_lag_seconds_bucket", {"event_loop_lag_seconds"})
    assert not exported_name("event_loop_lag_seconds_bucket", {"event_loop_lag"})
