"""Test data: search trials, and NNI trial databases with the schema NNI 3.0 really writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Copied from nni_node/core/sqlDatabase.js (NNI 3.0), checked against a real experiment's nni.sqlite.
NNI_SCHEMA = """
create table TrialJobEvent (timestamp integer, trialJobId text, event text, data text, logPath text,
    sequenceId integer, message text, environmentId text);
create index TrialJobEvent_trialJobId on TrialJobEvent(trialJobId);
create index TrialJobEvent_event on TrialJobEvent(event);
create table MetricData (timestamp integer, trialJobId text, parameterId text, type text, sequence integer, data text);
create index MetricData_trialJobId on MetricData(trialJobId);
create index MetricData_type on MetricData(type);
create table ExperimentProfile (params text, id text, execDuration integer, startTime integer, endTime integer,
    logDir text, nextSequenceId integer, revision integer);
"""

#: (trial id, parameters, final events after RUNNING, final metric or None)
NNI_TRIALS: list[tuple[str, dict[str, Any], list[str], Any]] = [
    ("R2Dtr", {"variance_threshold": 0.3, "budget": "adaptive"}, ["FAILED"], None),
    (
        "KgTxn",
        {"variance_threshold": 0.9, "budget": "adaptive"},
        ["SUCCEEDED"],
        {"default": 0.8, "accuracy": 0.9, "tflops": 1.0, "mean_kept_tokens": 42.0},
    ),
    (
        "otFkA",
        {"variance_threshold": 0.9, "budget": 64},
        ["SUCCEEDED"],
        {"default": 0.8, "accuracy": 0.9, "tflops": 0.64, "mean_kept_tokens": 64.0, "latency_ms": 12.5},
    ),
    ("cAnCl", {"variance_threshold": 0.5, "budget": 16}, ["USER_TO_CANCEL"], None),
    ("nOfIn", {"variance_threshold": 0.6, "budget": 16}, ["SUCCEEDED"], None),
    ("bAdMe", {"variance_threshold": 0.7, "budget": 32}, ["SUCCEEDED"], {"default": 0.5, "accuracy": 0.6}),
    ("rUnNi", {"variance_threshold": 0.8, "budget": 32}, [], None),
    ("eArLy", {"variance_threshold": 0.4, "budget": 8}, ["EARLY_STOPPED"], None),
]


def write_nni_db(path: Path, trials: Sequence[tuple[str, dict[str, Any], list[str], Any]] = NNI_TRIALS) -> Path:
    """An ``nni.sqlite`` as NNI writes it: parameters on the RUNNING event, metrics JSON-encoded twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(NNI_SCHEMA)
    t = 1_795_580_956_541
    for seq, (trial_id, params, events, final) in enumerate(trials):
        hparams = {"parameter_id": seq, "parameter_source": "algorithm", "parameters": params, "parameter_index": 0}
        con.execute(
            "insert into TrialJobEvent values (?,?,?,?,?,?,?,?)",
            (t, trial_id, "RUNNING", json.dumps(hparams), f"/trials/{trial_id}", seq, None, "local-env"),
        )
        periodic = json.dumps(json.dumps({"default": 0.1, "accuracy": 0.1}))
        con.execute(
            "insert into MetricData values (?,?,?,?,?,?)", (t + 1, trial_id, str(seq), "PERIODICAL", 0, periodic)
        )
        if final is not None:
            con.execute(
                "insert into MetricData values (?,?,?,?,?,?)",
                (t + 2, trial_id, str(seq), "FINAL", 0, json.dumps(json.dumps(final))),
            )
        for event in events:
            con.execute(
                "insert into TrialJobEvent values (?,?,?,?,?,?,?,?)",
                (t + 3, trial_id, event, None, f"/trials/{trial_id}", seq, None, "local-env"),
            )
        t += 10
    con.commit()
    con.close()
    return path


