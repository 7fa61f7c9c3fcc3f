"""A search stopped by SIGTERM or SIGHUP stops its NNI manager, dispatcher and trials, and keeps its results.

A real ``adaptive-svdprune search`` runs in a subprocess with a private ``HOME`` (NNI records experiments in
``~/nni-experiments``); the signal is sent once the experiment id is printed (SIGTERM: after the first trial
ended too, so there is a result to keep). Afterwards no process the search started may be alive, ``nnictl``
lists no running experiment, the results files exist and the exit code is ``128 + signal``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from adaptive_svdprune.models.tiny import tiny_llava_path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _experiment(tmp_path: Path) -> Path:
    space = {"variance_threshold": {"_type": "choice", "_value": [0.8, 0.9]},
             "budget": {"_type": "choice", "_value": [8, 16]}}
    (tmp_path / "space.json").write_text(json.dumps(space))
    command = shlex.join([sys.executable, "-m", "adaptive_svdprune.search.trial", "--task", "gqa", "--data",
                          str(FIXTURES / "gqa"), "--limit", "2", "--batch-size", "2", "--max-new-tokens", "2",
                          "--feature-cache", str(tmp_path / "cache")])
    experiment = {"experimentName": "test-signal", "searchSpaceFile": "space.json", "trialCommand": command,
                  "trialCodeDirectory": str(ROOT), "trialConcurrency": 1, "maxTrialNumber": 4,
                  "maxTrialDuration": "5m", "tuner": {"name": "GridSearch"},
                  "trainingService": {"platform": "local", "useActiveGpu": False}}
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(experiment))
    return tmp_path / "exp.yml"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.parametrize(("signum", "after_first_trial"), [(signal.SIGTERM, True), (signal.SIGHUP, False)],
                         ids=["sigterm-after-a-trial", "sighup-at-once"])
def test_stop_signal_stops_everything_and_keeps_results(
    signum: signal.Signals, after_first_trial: bool, tmp_path: Path
) -> None:
    config = _experiment(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(HOME=str(tmp_path / "home"), ADAPTIVE_SVDPRUNE_CACHE=str(tiny_llava_path().parent),
               WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptive_svdprune.cli", "search", "--config", str(config), "--nni-dir",
         str(tmp_path / "nni"), "--out", str(out), "--timeout", "300", "--no-wandb", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []
    experiment_id = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
                continue
            seen.append(line)
            match = re.search(r"experiment (\w+) running", line)
            if match:
                experiment_id = match.group(1)
            if experiment_id and (not after_first_trial or re.search(r"trial 1/4 \w+ SUCCEEDED", line)):
                break
        assert experiment_id, "".join(seen)
        started = _descendants(proc.pid)
        assert any("node" in " ".join(p.cmdline()) for p in started), [p.cmdline() for p in started]
        proc.send_signal(signum)
        stdout = proc.stdout.read()  # type: ignore[union-attr]
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    stderr = "".join(seen)
    (tmp_path / "stderr.txt").write_text(stderr)
    assert proc.returncode == 128 + signum, stderr
    assert stdout == ""  # no JSON for an interrupted search; everything said is on stderr
    assert f"adaptive-svdprune search: stopped by {signum.name}" in stderr
    assert f"experiment {experiment_id} interrupted" in stderr
    psutil.wait_procs(started, timeout=15)  # children orphaned at the very end may need a moment to exit
    assert _alive(started) == []  # manager, dispatcher and trials are gone
    listed = subprocess.run([str(Path(sys.executable).parent / "nnictl"), "experiment", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert experiment_id not in listed.stdout + listed.stderr  # nnictl lists running experiments only
    manifest = json.loads((tmp_path / "home" / "nni-experiments" / ".experiment").read_text())
    assert manifest[experiment_id]["status"] == "STOPPED"
    assert not psutil.pid_exists(manifest[experiment_id]["pid"]) or psutil.Process(
        manifest[experiment_id]["pid"]).status() == psutil.STATUS_ZOMBIE
    document = json.loads((out / "pareto.json").read_text())
    assert document["experiment"] == experiment_id and document["status"] == "INTERRUPTED"
    results = json.loads((out / "results.json").read_text())
    if after_first_trial:
        assert len(results) >= 1 and results[0]["mean_kept_tokens"] in (8.0, 16.0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_stop_signals_raise_and_handlers_are_restored(signum: signal.Signals) -> None:
    from adaptive_svdprune.search.experiment import Terminated, raise_if_stopped, stop_signals_raise

    def previous(signum: int, frame: object) -> None:  # pragma: no cover - never called
        raise AssertionError

    old = signal.signal(signum, previous)
    try:
        with pytest.raises(Terminated) as info, stop_signals_raise():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # interrupted by the handler
        assert info.value.signum == signum and isinstance(info.value, KeyboardInterrupt)
        assert signal.getsignal(signum) is previous
        raise_if_stopped()  # cleared once the block is left
    finally:
        signal.signal(signum, old)
