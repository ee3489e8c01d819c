"""Every stage on a Ray cluster (issue 15.1-2): a real two-node Ray cluster on this machine (a head
with 1 CPU, a worker node with 2 CPUs and the only `chef_cell` resources), and `chef loop` pointed at
it with one override, `--set ray_address=<address>` (+ the resource label that pins cells to the
worker). A tiny iteration: 2 scripted collect episodes, 2 explore trials, 1 execute and 1 fine-tune
episode. Asserts that the cells ran as Ray actors on the worker node, that every episode they
recorded reached the run's one store whole (catalogued, tagged, nothing half-shipped), that the
cells acted with the exact checkpoint bytes of the lineage's policies, the lineage and the chosen
policy, and that no process of the run or of the cluster is left.
"""

import os
import time
from collections import Counter

import psutil
import pytest

from loop_kill import TINY, ChefCommand, assert_no_process_left, catalog, ended, state

ray = pytest.importorskip('ray')
from ray.cluster_utils import Cluster  # noqa: E402

TINY_CLUSTER = ['collect.episodes=0', 'collect.scripted_episodes=2', 'cells.cells=2', 'cells.episode_steps=30',
                'cells.start_timeout_s=90', 'execute.episodes_per_triplet=1', 'execute.triplets=[rgb_test_triplet1]',
                'finetune.episodes_per_triplet=1', 'cluster.cell_resources={chef_cell: 1}']


def _holding(tmp: str) -> list:
    """Processes with a file under `tmp` open (every Ray process holds its session's logs)."""
    out = []
    for p in psutil.process_iter(['pid']):
        try:
            if any(f.path.startswith(tmp) for f in p.open_files()):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    ray_tmp = f'/tmp/chef-rc-{os.getpid()}'           # Ray's unix sockets: the path must stay short
    cells_tmp = tmp_path / 'nodes'                     # where the cell workers keep their local stores
    (cells_tmp / 'ray').mkdir(parents=True)            # Ray writes <tmp>/ray/ray_current_cluster
    monkeypatch.setenv('TMPDIR', str(cells_tmp))       # inherited by the nodes' raylets and workers
    c = None
    try:
        c = Cluster(initialize_head=True, head_node_args={'num_cpus': 1, 'resources': {'head': 1},
                                                          'temp_dir': ray_tmp, 'include_dashboard': False})
        worker = c.add_node(num_cpus=2, resources={'chef_cell': 2})
        c.wait_for_nodes()
        c.worker_node_id = worker.node_id
        c.head_node_id = c.head_node.node_id
        c.cells_tmp = cells_tmp
        yield c
    finally:
        if c is not None:
            c.shutdown()
        deadline = time.monotonic() + 20
        while _holding(ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _holding(ray_tmp)
        for p in left:
            p.kill()
        import shutil
        shutil.rmtree(ray_tmp, ignore_errors=True)
        assert not left, f'Ray processes left after the cluster shut down: {[p.pid for p in left]}'


def test_tiny_iteration_runs_its_cells_on_the_worker_node_and_ships_every_episode(tmp_path, cluster):
    runs = tmp_path / 'runs'
    run_dir = runs / 'tiny'
    sets = TINY_CLUSTER + [f'ray_address={cluster.address}']
    loop = ChefCommand(['loop'], runs, sets=sets, ros=True)
    rc, out = loop.finish(timeout_s=400)
    assert rc == 0, out[-4000:]
    assert_no_process_left(loop)
    st = state(run_dir)
    stages = st['iterations']['0']
    assert {s: v['status'] for s, v in stages.items()} == dict.fromkeys(
        ('collect', 'explore', 'execute', 'finetune'), 'done')
    arts = {s: v['artefacts'] for s, v in stages.items()}

    # the cells ran as Ray actors on the worker node (the only one with chef_cell), one cell each
    recorded = {}
    for stage, label in (('collect', 'scripted'), ('execute', arts['execute']['best_policy']),
                         ('finetune', arts['finetune']['policy'])):
        workers = arts[stage]['ray_cells'][label]
        assert len(workers) == 2 and all(w['cells'] == 1 for w in workers), workers
        assert {w['node_id'] for w in workers} == {cluster.worker_node_id}, (workers, cluster.head_node_id)
        assert len({w['pid'] for w in workers}) == 2
        recorded[stage] = sum(w['episodes'] for w in workers)

    # every episode the workers shipped is in the run's one store, catalogued and tagged
    recs = catalog(run_dir / 'data')
    by_stage = Counter(r.metadata.get('stage') for r in recs)
    assert by_stage == {'collect': recorded['collect'], 'execute': recorded['execute'],
                        'finetune': recorded['finetune']}, by_stage
    done = ended(recs)
    collect = [r for r in done if r.metadata['stage'] == 'collect']
    assert len(collect) == 2 and arts['collect']['scripted_expert']['episodes'] == 2
    assert {(r.metadata.get('tags') or {}).get('data_source') for r in collect} == {'scripted_expert'}
    data = run_dir / 'data' / 'episodes'
    assert not list(data.glob('*/.incoming')) and not list(data.glob('*/.partial/*'))
    assert not list(cluster.cells_tmp.glob('chef-cells-*'))       # the workers' local stores are gone

    # lineage and the chosen policy; the cells acted with the lineage's exact checkpoint bytes
    pols = st['policies']
    best = arts['execute']['best_policy']
    assert best == arts['explore']['candidates'][0] and pols[best]['stage'] == 'explore'
    ft = pols[arts['finetune']['policy']]
    assert ft['parent'] == best and ft['stage'] == 'finetune'
    from chef_policy.checkpoint import file_sha256
    for pid in (best, arts['finetune']['policy']):
        assert file_sha256(pols[pid]['checkpoint']) == pols[pid]['sha256']
    for stage, pid in (('execute', best), ('finetune', arts['finetune']['policy'])):
        eps = [r for r in done if r.metadata['stage'] == stage]
        assert len(eps) == 1 and (eps[0].metadata.get('tags') or {}).get('candidate') == pid
        assert {r.metadata.get('checkpoint_sha256') for r in eps} == {pols[pid]['sha256']}
    ev, parent_ev = arts['finetune']['evaluation'], arts['execute']['evaluations'][0]
    better = (ev['success']['mean']['rate'], ev['mean_staged_return']) >= (
        parent_ev['success']['mean']['rate'], parent_ev['mean_staged_return'])
    assert arts['finetune']['best_policy'] == (arts['finetune']['policy'] if better else best)
    assert 'Ray cluster' in out and 'driver\'s node' in out       # fine-tune trained as a Ray task

    # resume safety: the stages count the shipped episodes as theirs (tags intact), so re-entering
    # them asks the cells for nothing
    from chef_loop.config import load_loop_config
    from chef_loop.stages import ChefRun
    said = []
    run = ChefRun(load_loop_config(TINY, sets + [f'runs_dir={runs}']), log=said.append, progress=False)
    assert run.collect(0)['scripted_expert']['episodes'] == 2
    assert run.evaluate(0, 'execute', best, 1, ['rgb_test_triplet1'])['episodes'] == 1
    assert not [m for m in said if 'cell' in m], said


def _cell_workers() -> list:
    """Live CellWorker actor processes (Ray titles them ray::CellWorker...)."""
    out = []
    for p in psutil.process_iter(['pid', 'cmdline']):
        cmd = ' '.join(p.info['cmdline'] or [])
        if cmd.startswith('ray::CellWorker'):
            out.append(p)
    return out


def test_a_cell_worker_killed_mid_stage_loses_nothing_shipped_and_ships_nothing_partial(tmp_path, cluster):
    """SIGKILL one cell actor while its cell records; the stage fails with one clear line; the re-run
    brings the store to exactly the episodes asked for: shipped ones counted, none doubled, none
    partial, the dead actor's graph gone and its local store removed by the next worker there."""
    from collections import Counter as _Counter

    from loop_kill import episode_key, published
    runs = tmp_path / 'runs'
    data = runs / 'tiny' / 'data'
    sets = [s for s in TINY_CLUSTER if not s.startswith('cells.episode_steps')] + [
        'cells.episode_steps=120', 'collect.scripted_episodes=4', f'ray_address={cluster.address}']
    first = ChefCommand(['collect'], runs, sets=sets, ros=True)
    running = first.wait_for(lambda: published(data) and len(_cell_workers()) == 2, timeout_s=240, period_s=0.2)
    assert running, first.output()
    victim = _cell_workers()[0]
    graph = [c for c in victim.children(recursive=True)]
    victim.kill()
    rc, out = first.finish(timeout_s=180)
    assert rc != 0 and 'a cell worker failed to run episodes' in out, out[-3000:]
    psutil.wait_procs(graph, timeout=30)
    assert not [c for c in graph if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    shipped_before = set(published(data))
    assert shipped_before

    rerun = ChefCommand(['collect'], runs, sets=sets, ros=True)
    rc, out = rerun.finish(timeout_s=240)
    assert rc == 0, out[-3000:]
    assert_no_process_left(first, rerun)
    recs = catalog(data)
    assert shipped_before <= {r.id for r in recs}
    done = ended(recs)
    assert len(done) == 4 and max(_Counter(episode_key(r) for r in done).values()) == 1
    assert not list(data.glob('episodes/*/.incoming')) and not list(data.glob('episodes/*/.partial/*'))
    assert not list(cluster.cells_tmp.glob('chef-cells-*'))
