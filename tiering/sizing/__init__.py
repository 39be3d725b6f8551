"""Sizing benchmark: how shard count, routing, replicas and hot fraction change recall,
latency and the monthly bill for one data set and workload.

The flow is: :mod:`.workload` loads vectors, queries and exact ground truth and draws
the query stream; :mod:`.runner` builds real per-shard indexes (:mod:`.shards`,
:mod:`.engines`) and records raw per-query results (:mod:`.records`); :mod:`.summary`
turns records into metrics and costs with pure functions; :mod:`.report` and
:mod:`.plots` write them out; :mod:`.command` is the ``tiering size`` CLI.
"""
