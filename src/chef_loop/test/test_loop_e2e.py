"""End to end: a tiny CHEF loop through real nodes (sim bridges, policy, safety filter, recorder,
trainer over DDS; CRR trials on Ray Tune), then a kill -9 mid-stage and a resume.

Slow by nature (~3-4 min on 2 cores): it is the one test of the whole product. Episodes are 60
ticks instead of 400 to fit CI.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from chef_contract.testing import ros_env, unique_domain_id
from loop_kill import TINY, ChefCommand, assert_no_process_left, catalog, ended, episode_key, state


def episodes(run_dir):
    """Episodes that ran to their end (evaluation counts these, recorded completely or not)."""
    return ended(catalog(run_dir / 'data'))


# the two trials also go to Execute acting as one (an ensemble manifest the policy nodes load)
ENSEMBLE = ['explore.ensemble=2']


def test_tiny_loop_produces_every_artefact_and_resumes_after_kill(tmp_path):
    runs = tmp_path / 'runs'
    run_dir = runs / 'tiny'
    # 1. start the loop and SIGKILL it in the middle of the execute stage
    loop = ChefCommand(['loop'], runs, ENSEMBLE, ros=True)

    def in_execute_with_an_episode():
        st = state(run_dir).get('iterations', {}).get('0', {})
        return (st.get('execute', {}).get('status') == 'running'
                and run_dir.joinpath('data', 'catalog.sqlite').exists()
                and any(r.metadata.get('stage') == 'execute' for r in episodes(run_dir)))
    if loop.wait_for(in_execute_with_an_episode, timeout_s=420, period_s=1.0):
        loop.kill('group')                        # the loop and everything it started
    else:
        loop.finish(timeout_s=60)
        raise AssertionError(f'loop never reached execute (rc={loop.proc.returncode}):\n{loop.output(3000)}')
    before = {r.id for r in episodes(run_dir)}
    assert state(run_dir)['iterations']['0']['explore']['status'] == 'done'

    # 2. resume: same command
    rerun = ChefCommand(['loop'], runs, ENSEMBLE, ros=True)
    rc, out = rerun.finish(timeout_s=600)
    assert rc == 0, out[-4000:]
    assert_no_process_left(loop, rerun)          # the killed run's nodes and Ray included
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
    assert arts['explore']['candidates'][-1] == 'explore-0-ens2'
    ens = st['policies']['explore-0-ens2']
    assert ens['checkpoint'].endswith('.ensemble.json') and len(ens['config']['members']) == 2
    assert {ev['policy']: ev['episodes'] for ev in arts['execute']['evaluations']}['explore-0-ens2'] == 4
    assert arts['finetune']['parent'] == best
    assert Path(st['policies'][arts['finetune']['policy']]['checkpoint']).is_file()

    # data from all stages is in the catalog; nothing lost, nothing doubled
    recs = episodes(run_dir)
    assert before <= {r.id for r in recs}, 'episodes recorded before the kill were lost'
    counts = Counter(episode_key(r) for r in recs)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    by_stage = Counter(r.metadata.get('stage') for r in recs)
    assert by_stage['collect'] == 2
    assert by_stage['execute'] == 2 * 2 * 2      # 2 candidates x 2 triplets x 2 episodes, exactly
    assert by_stage['finetune'] == 2
    per_triplet = Counter(r.metadata['triplet'] for r in recs if r.metadata.get('stage') == 'execute')
    assert per_triplet == {'rgb_test_triplet1': 4, 'rgb_test_triplet5': 4}

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
                          '--set', f'runs_dir={runs}', '--set', ENSEMBLE[0]], env=ros_env(unique_domain_id()),
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    html = (run_dir / 'report' / 'index.html').read_text()
    assert 'Success per stage' in html and (run_dir / 'report' / 'success.png').stat().st_size > 1000
    it0 = json.loads((run_dir / 'report' / 'summary.json').read_text())['iterations'][0]
    chosen = arts['finetune']['best_policy']
    evaluated = 2 if chosen == arts['finetune']['policy'] else 4     # its fine-tune row, or its execute row
    assert it0['chosen'] == chosen and it0['chosen_success']['trials'] == evaluated
    assert it0['finetune']['policy'] == arts['finetune']['policy'] and it0['online_collect']['episodes'] == 1
