"""Cell backends (chef_loop.backends): the loop's stages on real-cell graphs.

The config rules and the commands a backend builds are checked without ROS; one short session then
runs a stage-like job on an emulated real cell (`chef run real hardware:=mujoco`, one cell) through
the loop's own CellSession and CellFleet, and its episode lands in the same store and catalog the
sim cells write (source 'real'). A whole iteration on real cells is the bench `chef loop --config
real_emulated` (docs/real_cell.md), too long for CI.
"""

import pytest

from chef_contract.config import ConfigError
from chef_contract.testing import wait_for
from chef_loop.backends import RealCells, SimCells, make_backend
from chef_loop.config import load_loop_config


def test_real_emulated_config_loads_and_builds_one_real_graph_per_cell():
    cfg = load_loop_config('real_emulated', ['cells.cells=2'])
    backend = make_backend(cfg.cells)
    assert isinstance(backend, RealCells)
    args = dict(backend.base_args('/tmp/data'), policy='scripted', noise=0.1, deterministic=False)
    cmds = backend.commands(17, args)
    assert len(cmds) == 2
    for i, cmd in enumerate(cmds):
        assert cmd[cmd.index('run') + 1] == 'real' and cmd[cmd.index('--domain') + 1] == '17'
        kv = dict(a.split(':=', 1) for a in cmd if ':=' in a)
        assert kv['cell'] == str(i) and kv['hardware'] == 'mujoco' and kv['reset_mode'] == 'service'
        assert kv['reset_seed_node'] == 'hardware_emulator'       # emulated layouts follow episode seeds
        assert kv['triplet'] == 'rgb_test_triplet1' and kv['policy'] == 'scripted' and kv['policy_noise'] == '0.1'
        assert kv['data_dir'] == '/tmp/data' and kv['grasp_stall_velocity_rps'] == '0.3'
    with pytest.raises(ConfigError, match='trainer'):
        backend.commands(17, dict(args, train=True))
    with pytest.raises(ConfigError, match='no meaning'):
        backend.commands(17, dict(args, frobnicate=1))
    sim = make_backend(load_loop_config('default').cells)
    assert isinstance(sim, SimCells) and len(sim.commands(5, sim.base_args('/tmp/d'))) == 1


@pytest.mark.parametrize('override, match', [
    (['execute.triplets=[rgb_test_triplet2]'], 'every cell holds'),
    (['collect.episodes=2'], 'trainer node'),
])
def test_real_cells_refuse_what_a_real_cell_cannot_do(override, match):
    with pytest.raises(ConfigError, match=match):
        load_loop_config('real_emulated', override)


def test_an_emulated_real_cell_runs_a_loop_job_into_the_shared_store(tmp_path):
    from chef_loop.cells import CellSession
    from chef_loop.jobs import EpisodeJob
    from chef_recorder.catalog import Catalog
    from chef_recorder.layout import DataLayout
    cfg = load_loop_config('real_emulated', ['cells.episode_steps=60', 'cells.start_timeout_s=150'])
    data = tmp_path / 'data'
    job = EpisodeJob('rgb_test_triplet1', 11, {'stage': 'execute', 'iteration': 0, 'policy_id': 'scripted'})
    with CellSession(cfg.cells, data, tmp_path / 'graph.log', graph_args={'policy': 'scripted'}) as s:
        outcomes = s.run([job])
        # as ChefRun.wait_recorded: the session stays up until the recorder has published the
        # episode (under load it may still be writing the ticks after the end event)
        ended = [o.event.episode_id for o in outcomes if o.event is not None]
        wait_for(lambda: all((data / 'episodes' / 'cell0' / i).is_dir() for i in ended), 60.0, 0.2)
    assert len(outcomes) == 1 and outcomes[0].ok, (outcomes, (tmp_path / 'graph.log').read_text()[-4000:])
    ev = outcomes[0].event
    assert ev.source == 'real' and ev.steps == 60 and ev.tags.get('stage') == 'execute'
    bag = data / 'episodes' / 'cell0' / ev.episode_id
    assert bag.is_dir(), sorted(p.name for p in (data / 'episodes' / 'cell0').iterdir())
    with Catalog(DataLayout(data)) as cat:       # the recorder catalogued it, as sim cells' recorders do
        row = cat.get(ev.episode_id)
    assert row['source'] == 'real' and row['stage'] == 'execute' and row['steps'] == 60
