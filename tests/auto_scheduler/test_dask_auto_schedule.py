"""``tecomp tune --auto-schedule --scheduler``: the search's candidates built and timed on a Dask
LocalCluster (loopback, one worker process offering ``llvm``), as tests/tuner/test_dask.py does
for templates."""

from __future__ import annotations

import logging

import pytest

distributed = pytest.importorskip("distributed")

import tecomp  # noqa: E402
from tecomp.cli import main  # noqa: E402
from tecomp.tuner.dask_measure import resource_key  # noqa: E402

from test_cli_auto_schedule import _model  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, resources={resource_key("llvm"): 1},
                                  silence_logs=logging.CRITICAL) as local, distributed.Client(local) as client:
        yield client


def test_auto_schedule_measures_on_the_cluster(cluster, tmp_path, capsys):
    base, _ = _model(tmp_path)
    db = tmp_path / "as.db"
    address = cluster.scheduler.address
    assert main(["tune", *base, "--records", str(db), "--auto-schedule", "--scheduler", address,
                 "--trials", "4"]) == 0
    assert "auto-scheduled 1 kernels" in capsys.readouterr().out
    with tecomp.tuner.RecordDB(db) as records:
        searched = [r for r in records.records() if r.tuner == "auto_scheduler"]
    assert len(searched) == 4  # the default and 3 candidates
    assert all(r.error_no == 0 and r.costs and r.costs[0] > 0 for r in searched), [r.error_msg for r in searched]
    # the worker built and timed them (its pools), and the command closed its own connection, not ours
    assert list(cluster.run(_pool_roles).values()) == [["builder", "runner"]]
    assert cluster.status == "running"


def _pool_roles():
    from tecomp.tuner import dask_measure
    return sorted({role for role, _ in dask_measure._pools})


def test_auto_schedule_names_a_target_no_worker_offers(cluster, tmp_path, capsys):
    base, _ = _model(tmp_path)
    assert main(["tune", *base, "--records", str(tmp_path / "as.db"), "--auto-schedule", "--target", "cuda",
                 "--scheduler", cluster.scheduler.address, "--trials", "4"]) == 1
    err = capsys.readouterr().err
    assert "no Dask worker" in err and "offers target 'cuda'" in err
