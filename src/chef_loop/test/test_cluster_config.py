"""Placement keys of a CHEF run (chef_loop.cluster), without Ray or ROS: the older
explore.ray_address still loads, a contradiction is one clear error, cells split into workers, a run
resumes on a cluster (where it runs is not part of its identity, what it computes is), and a cell
worker refuses a checkpoint that arrived damaged."""

import dataclasses

import pytest

from chef_contract.config import ConfigError, load_config
from chef_loop.cluster import cell_workers, explore_address
from chef_loop.config import LoopConfig, load_loop_config
from loop_kill import TINY


def test_ray_address_and_the_older_explore_key():
    assert explore_address(load_loop_config(TINY)) == ''
    old = load_loop_config(TINY, ['explore.ray_address=ray://lab:10001'])
    assert old.ray_address == '' and explore_address(old) == 'ray://lab:10001'   # Explore only, as before
    new = load_loop_config(TINY, ['ray_address=auto', 'cluster.cell_resources={chef_cell: 1}'])
    assert explore_address(new) == 'auto' and new.cluster.cell_resources == {'chef_cell': 1.0}
    with pytest.raises(ConfigError, match='differ') as err:
        load_loop_config(TINY, ['ray_address=auto', 'explore.ray_address=ray://lab:10001'])
    assert '\n' not in str(err.value)
    with pytest.raises(ConfigError):
        load_loop_config(TINY, ['ray_address=auto', 'cluster.cells_per_worker=0'])


def test_cells_split_into_workers():
    assert [cell_workers(n, per) for n, per in ((1, 1), (2, 1), (4, 2), (5, 2), (3, 4))] == [1, 2, 2, 3, 1]
    from chef_loop.ray_cells import RayCellSession
    cfg = load_loop_config(TINY, ['ray_address=auto', 'cells.cells=5', 'cluster.cells_per_worker=2',
                                  'cluster.gpus_per_cell=0.5', 'cluster.cell_resources={chef_cell: 1}'])
    s = RayCellSession(cfg, '/nonexistent', '/nonexistent/x.graph.log', {}, '/nonexistent')
    assert s._worker_cells() == [2, 2, 1]
    assert s._options(2) == {'num_cpus': 2.0, 'num_gpus': 1.0, 'scheduling_strategy': 'SPREAD',
                             'max_restarts': 0, 'resources': {'chef_cell': 1.0}}


def test_a_run_resumes_on_a_cluster_but_not_with_other_work(tmp_path):
    from chef_loop.stages import ChefRun
    sets = [f'runs_dir={tmp_path}']
    ChefRun(load_loop_config(TINY, sets), log=lambda s: None)
    quiet = {'log': lambda s: None}
    ChefRun(load_loop_config(TINY, sets + ['ray_address=auto', 'cluster.cells_per_worker=2']), **quiet)
    ChefRun(load_loop_config(TINY, sets + ['explore.ray_address=ray://lab:10001']), log=lambda s: None)
    with pytest.raises(ConfigError, match='different config'):
        ChefRun(load_loop_config(TINY, sets + ['ray_address=auto', 'explore.trials=3']), log=lambda s: None)
    # more iterations or more patient timeouts continue the same run, and config.yaml says so
    ChefRun(load_loop_config(TINY, sets + ['iterations=3', 'cells.start_timeout_s=300']), **quiet)
    saved = load_config(LoopConfig, tmp_path / load_loop_config(TINY).name / 'config.yaml')
    assert (saved.iterations, saved.cells.start_timeout_s) == (3, 300.0)
    with pytest.raises(ConfigError, match='different config'):
        ChefRun(load_loop_config(TINY, sets + ['iterations=3', 'cells.episode_steps=200']), **quiet)


def test_cell_worker_refuses_a_damaged_checkpoint(tmp_path):
    from chef_loop.jobs import FleetError
    from chef_loop.ray_cells import CellWorker, ShippedFile, ship_file
    ckpt = tmp_path / 'policy.pt'
    ckpt.write_bytes(b'\x00checkpoint bytes' * 100)
    good = ship_file(str(ckpt))
    assert good.data == ckpt.read_bytes() and len(good.sha256) == 64
    bad = dataclasses.replace(good, data=good.data[:-7])             # cut short in transit
    worker = CellWorker.__new__(CellWorker)                          # no Ray: only open()'s check
    worker.root, worker.cells_cfg = tmp_path / 'w', load_loop_config(TINY).cells
    with pytest.raises(FleetError, match='sha256'):
        worker.open({'policy': str(ckpt)}, {'policy': bad})
    assert not (tmp_path / 'w').exists()
    assert isinstance(bad, ShippedFile)
