"""End to end: a tiny CHEF loop through real nodes (sim bridges, policy, safety filter, recorder,
trainer over DDS; CRR trials on Ray Tune), then a kill -9 mid-stage and a resume.

Slow by nature (~3-4 min on 2 cores): it is the one test of the whole product. Episodes are 60
ticks instead of 400 to fit CI.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


from chef_contract.testing import ros_env, unique_domain_id

TINY = Path(__file__).with_name('tiny.yaml')


def chef(args, runs_dir, **kw):
    env = ros_env(unique_domain_id())
    return subprocess.Popen([sys.executable, '-m', 'chef_bringup.cli', *args, '--config', str(TINY),
                             '--set', f'runs_dir={runs_dir}', '--no-progress'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def state(run_dir):
    p = run_dir / 'state.json'
    return json.loads(p.read_text()) if p.is_file() else {}


def episodes(run_dir):
    """Episodes that ran to their end (evaluation counts these, recorded completely or not)."""
    from chef_recorder.dataset import Dataset
    return [r for r in Dataset(run_dir / 'data').query(complete=None) if r.metadata.get('status') == 'end']


def key(r):
    m = r.metadata
    t = m.get('tags') or {}
    return (m.get('stage'), m.get('iteration'), t.get('data_source'), t.get('candidate'), m.get('triplet'),
            m.get('seed'))


def test_tiny_loop_produces_every_artefact_and_resumes_after_kill(tmp_path):
    runs = tmp_path / 'runs'
    run_dir = runs / 'tiny'
    # 1. start the loop and SIGKILL it in the middle of the execute stage
    proc = chef(['loop'], runs, start_new_session=True)
    deadline = time.monotonic() + 420
    killed_during = None
    while time.monotonic() < deadline:
        st = state(run_dir).get('iterations', {}).get('0', {})
        if st.get('execute', {}).get('status') == 'running' and run_dir.joinpath('data', 'catalog.sqlite').exists():
            if any(r.metadata.get('stage') == 'execute' for r in episodes(run_dir)):
                killed_during = 'execute'
                break
        if proc.poll() is not None:
            break
        time.sleep(1.0)
    out = ''
    if killed_during:
        os.killpg(proc.pid, signal.SIGKILL)       # the loop and everything it started
        proc.wait()
    else:
        out = proc.communicate()[0]
    assert killed_during == 'execute', f'loop never reached execute (rc={proc.returncode}):\n{out[-3000:]}'
    before = {r.id for r in episodes(run_dir)}
    assert state(run_dir)['iterations']['0']['explore']['status'] == 'done'

    # 2. resume: same command
    proc = chef(['loop'], runs)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    st = state(run_dir)
    stages = st['iterations']['0']
    assert [stages[s]['status'] for s in ('collect', 'explore', 'execute', 'finetune')] == ['done'] * 4
    assert stages['collect']['status'] == 'done' and 'resumed' not in stages['collect']
    assert stages['execute'].get('resumed') == 1
    assert 'explore' in out and 'done earlier, skipped' in out

    # every stage produced its artefacts
    arts = {s: stages[s]['artefacts'] for s in stages}
    assert arts['collect']['scripted_expert']['episodes'] == 1
    assert arts['collect']['online_learner']['episodes'] == 1
    assert len(arts['explore']['trials']) == 2 and arts['explore']['candidates']
    for t in arts['explore']['trials']:
        assert t['checkpoint'] and Path(t['checkpoint']).is_file()
        assert t['score'] is not None                # fitted Q evaluation scored every trial
        trial_dir = Path(t['checkpoint']).parents[1]
        assert len(list((trial_dir / 'checkpoints').glob('step_*.pt'))) >= 2   # periodic + final
    from chef_loop.ray_session import ray_processes, ray_temp_dir
    assert ray_processes(run_dir) == {} and not ray_temp_dir(run_dir).exists()   # no Ray left over
    assert arts['explore']['metric'] == 'fqe_value' and arts['explore']['holdout_episodes'] == 1
    split = json.loads((run_dir / 'iter_00' / 'explore' / 'data.json').read_text())
    assert not set(split['holdout']) & set(split['episodes'])     # held out of trial training
    assert (run_dir / 'iter_00' / 'explore' / 'trials.json').is_file()
    best = arts['execute']['best_policy']
    assert best in arts['explore']['candidates']
    assert arts['finetune']['parent'] == best
    assert Path(st['policies'][arts['finetune']['policy']]['checkpoint']).is_file()

    # data from all stages is in the catalog; nothing lost, nothing doubled
    recs = episodes(run_dir)
    assert before <= {r.id for r in recs}, 'episodes recorded before the kill were lost'
    counts = Counter(key(r) for r in recs)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    by_stage = Counter(r.metadata.get('stage') for r in recs)
    assert by_stage['collect'] == 2
    assert by_stage['execute'] == 2 * 2          # 2 triplets x 2 episodes, exactly, after the resume
    assert by_stage['finetune'] == 2
    per_triplet = Counter(r.metadata['triplet'] for r in recs if r.metadata.get('stage') == 'execute')
    assert per_triplet == {'rgb_test_triplet1': 2, 'rgb_test_triplet5': 2}

    # lineage links them: finetuned policy -> best candidate; each saw the data it says it saw
    ft = st['policies'][arts['finetune']['policy']]
    assert ft['parent'] == best and st['policies'][best]['stage'] == 'explore'
    seen_ft = Path(ft['data']['list']).read_text().split()
    seen_best = Path(st['policies'][best]['data']['list']).read_text().split()
    assert set(seen_best) < set(seen_ft)             # fine-tuning saw everything, incl. execute data
    assert {r.id for r in recs if r.metadata.get('stage') == 'execute'} <= set(seen_ft)
    assert st['policies']['collect-0']['stage'] == 'collect'

    # 3. the report renders from the same run
    rep = subprocess.run([sys.executable, '-m', 'chef_bringup.cli', 'report', '--config', str(TINY),
                          '--set', f'runs_dir={runs}'], env=ros_env(unique_domain_id()),
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    html = (run_dir / 'report' / 'index.html').read_text()
    assert 'Success per stage' in html and (run_dir / 'report' / 'success.png').stat().st_size > 1000
