"""Kill -9 of `chef loop` in the collect and in the finetune stage, then the same command again
(issue 16, "loop killed in each stage"; explore: test_explore_kill.py, execute: test_loop_e2e.py).

What must hold after the rerun: no episode that ended before the kill is lost and none is recorded
twice (a stage counts what the store holds and runs only the rest); the episode the kill cut is
published as what it is (`shutdown` when the dying graph's recorder could still close it,
`abort` for reason `shutdown` when the sim bridge's own shutdown abort reached the recorder first,
`recovered` after a crash repair), never left under `.partial` and never counted as complete;
state.json says which stage ran, was re-entered and finished; fine-tuning resumes from its newest
checkpoint, not from its parent's weights; the fine-tuned policy's lineage and checkpoint are those
the evaluation episodes ran with; and no process of either run is alive 30 s after the rerun.

Tiny sizes: 1 cell, 150-tick episodes (~2.5 s each), the earlier stages of the finetune test on
synthetic episodes (ROS-free) so that only Execute and the fine-tune evaluation start cells.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from loop_kill import (ChefCommand, assert_no_process_left, catalog, data_ls, ended, episode_key,
                       latest_step, metrics_steps, partial_dirs, published, quarantined,
                       record_synthetic_episodes, recording, stage_statuses, state)

EPISODE_STEPS = 150                  # ticks per episode: ~2.5 s here, long enough to kill one mid-way
MID_EPISODE_BYTES = 200_000          # MCAP already synced of the episode the kill cuts (~10 ticks)


def assert_cut_episode_published_as_partial(data_dir, cut_id, ls_text):
    """The episode a kill cut mid-way: published as incomplete (the recorder's shutdown, the sim
    bridge's shutdown abort when that event won the race to the recorder, or a crash repair), shown
    as such by `chef data ls --all`, or quarantined when nothing of it was readable; never complete,
    never left under .partial."""
    assert not partial_dirs(data_dir), f'partial episodes left: {partial_dirs(data_dir)}'
    rec = {r.id: r for r in catalog(data_dir)}.get(cut_id)
    if rec is None:
        assert cut_id in quarantined(data_dir), f'the cut episode {cut_id} vanished'
        return
    status, reason = rec.metadata['status'], rec.metadata.get('abort_reason')
    assert (status in ('shutdown', 'recovered') or (status, reason) == ('abort', 'shutdown')), rec.metadata
    assert not rec.metadata['complete'], rec.metadata
    assert 0 < rec.metadata['steps_recorded'] < EPISODE_STEPS
    row = next((line for line in ls_text.splitlines() if line.startswith(cut_id[:20])), '')
    assert 'PARTIAL' in row, ls_text


# --- C: collect ----------------------------------------------------------------------------------
COLLECT = ['collect.scripted_episodes=3', 'collect.episodes=2', f'cells.episode_steps={EPISODE_STEPS}']


@pytest.mark.parametrize('phase,victim', [('scripted', 'group'), ('learner', 'tree')])
def test_loop_killed_mid_collect_episode_loses_and_doubles_nothing(tmp_path, phase, victim):
    runs = tmp_path / 'runs'
    run_dir, data = runs / 'tiny', runs / 'tiny' / 'data'
    # 1. kill -9 in the middle of an episode of the phase, after one of its episodes has ended:
    #    the scripted expert's (3 episodes) or the online learner's (2, cells + trainer node)
    ended_before_phase = 1 if phase == 'scripted' else 3 + 1
    loop = ChefCommand(['loop', '--stages', 'collect'], runs, COLLECT, ros=True)
    cut = []

    def mid_episode():
        cut[:] = recording(data, MID_EPISODE_BYTES)
        return len(published(data)) >= ended_before_phase and bool(cut)
    reached = loop.wait_for(mid_episode, timeout_s=180)
    assert reached, f'never mid-episode in collect/{phase}:\n{loop.output()}'
    loop.kill(victim)
    assert_no_process_left(loop)                  # the dying graph's nodes are gone in 30 s
    assert stage_statuses(run_dir) == {'collect': 'running'}
    before = {r.id for r in ended(catalog(data))}
    assert len(before) >= ended_before_phase and cut[0] not in before
    if victim == 'tree':                          # nothing closed it: a crashed partial is left
        assert [d.name for d in partial_dirs(data)] == cut

    # 2. the same command again: collect is re-entered and finished
    rerun = ChefCommand(['loop', '--stages', 'collect'], runs, COLLECT, ros=True)
    rc, out = rerun.finish(timeout_s=240)
    assert rc == 0, out[-4000:]
    assert_no_process_left(loop, rerun)
    st = state(run_dir)['iterations']['0']
    assert list(st) == ['collect'] and st['collect']['status'] == 'done' and st['collect']['resumed'] == 1
    arts = st['collect']['artefacts']
    assert arts['scripted_expert']['episodes'] == 3 and arts['online_learner']['episodes'] == 2

    recs = catalog(data)
    done = ended(recs)
    assert before <= {r.id for r in done}, 'episodes that ended before the kill were lost'
    counts = Counter(episode_key(r) for r in done)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    by_source = Counter(r.metadata['tags']['data_source'] for r in done)
    assert by_source == {'scripted_expert': 3, 'online_learner': 2}
    assert_cut_episode_published_as_partial(data, cut[0], data_ls(data))
    if victim == 'tree':
        rec = next(r for r in recs if r.id == cut[0])
        assert rec.metadata['status'] == 'recovered' and 'died' in rec.metadata['abort_reason']


# --- F: finetune ---------------------------------------------------------------------------------
STEPS, EVERY = 1000, 100             # fine-tuning updates, updates between its checkpoints
FINETUNE = ['collect.episodes=0', 'collect.scripted_episodes=0',        # the store is synthetic
            'explore.trials=1', 'explore.max_concurrent=1',
            'execute.episodes_per_triplet=1', 'execute.triplets=[rgb_test_triplet1]',
            f'finetune.steps={STEPS}', f'finetune.checkpoint_every={EVERY}', 'finetune.episodes_per_triplet=2',
            f'cells.episode_steps={EPISODE_STEPS}']


def test_loop_killed_in_finetune_resumes_training_and_evaluation(tmp_path):
    runs = tmp_path / 'runs'
    run_dir, data = runs / 'tiny', runs / 'tiny' / 'data'
    train_dir = run_dir / 'iter_00' / 'finetune' / 'train'
    assert record_synthetic_episodes(data, 0, 4, 30) == 4
    # 1. kill -9 of the loop's process group mid-training, after a periodic checkpoint
    loop = ChefCommand(['loop'], runs, FINETUNE, ros=True)
    reached = loop.wait_for(lambda: (latest_step(train_dir) or 0) >= EVERY, timeout_s=240)
    assert reached, f'fine-tuning never checkpointed:\n{loop.output()}'
    loop.kill('group')
    killed_at = latest_step(train_dir)
    assert EVERY <= killed_at < STEPS
    assert stage_statuses(run_dir) == {'collect': 'done', 'explore': 'done', 'execute': 'done',
                                       'finetune': 'running'}
    assert 'finetune-0' not in state(run_dir)['policies']
    store_at_finetune = set(published(data))      # 4 synthetic + 1 execute episode

    # 2. again, and kill -9 every process of it in the middle of the second evaluation episode
    rerun = ChefCommand(['loop'], runs, FINETUNE, ros=True)

    cut = []

    def mid_second_evaluation():
        cut[:] = recording(data, MID_EPISODE_BYTES)
        return len(published(data)) >= len(store_at_finetune) + 1 and bool(cut)
    reached = rerun.wait_for(mid_second_evaluation, timeout_s=240)
    assert reached, f'never in the middle of a fine-tune evaluation episode:\n{rerun.output()}'
    rerun.kill('tree')
    out = rerun.output(tail=0)
    for stage in ('collect', 'explore', 'execute'):
        assert f'[iteration 0] {stage}: done earlier, skipped' in out
    summary = json.loads((train_dir / 'summary.json').read_text())
    resumed = summary['started_from']
    assert resumed.startswith('resumed:'), resumed                     # not from the parent's weights
    resumed_at = int(Path(resumed).stem.split('_')[1])
    assert killed_at <= resumed_at < STEPS and resumed_at % EVERY == 0 and summary['steps'] == STEPS
    assert metrics_steps(train_dir) == list(range(10, STEPS + 1, 10))  # each logged step once
    ft_before = {r.id for r in ended(catalog(data)) if r.metadata.get('stage') == 'finetune'}
    assert len(ft_before) == 1 and [d.name for d in partial_dirs(data)] == cut

    # 3. once more: the evaluation is completed, nothing trained again
    last = ChefCommand(['loop'], runs, FINETUNE, ros=True)
    rc, out = last.finish(timeout_s=240)
    assert rc == 0, out[-4000:]
    assert_no_process_left(loop, rerun, last)
    st = state(run_dir)
    stages = st['iterations']['0']
    assert {s: v['status'] for s, v in stages.items()} == {s: 'done' for s in
                                                            ('collect', 'explore', 'execute', 'finetune')}
    assert stages['finetune']['resumed'] == 2
    assert not any('resumed' in stages[s] for s in ('collect', 'explore', 'execute'))
    arts = stages['finetune']['artefacts']
    assert arts['policy'] == 'finetune-0' and arts['parent'] == stages['execute']['artefacts']['best_policy']
    assert arts['updates'] == STEPS and arts['evaluation']['episodes'] == 2
    assert arts['best_policy'] in ('finetune-0', arts['parent'])

    recs = catalog(data)
    done = ended(recs)
    ft = [r for r in done if r.metadata.get('stage') == 'finetune']
    assert ft_before <= {r.id for r in ft} and len(ft) == 2, 'fine-tune evaluation episodes lost or doubled'
    counts = Counter(episode_key(r) for r in done)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    assert Counter(r.metadata.get('stage') for r in done)['execute'] == 1
    assert_cut_episode_published_as_partial(data, cut[0], data_ls(data))

    # the policy is the one its evaluation episodes ran, trained on exactly what it says it saw
    from chef_policy.checkpoint import file_sha256
    pol = st['policies']['finetune-0']
    assert file_sha256(pol['checkpoint']) == pol['sha256']
    assert {r.metadata.get('checkpoint_sha256') for r in ft} == {pol['sha256']}
    seen = set(Path(pol['data']['list']).read_text().split())
    assert seen == store_at_finetune, 'the lineage names episodes fine-tuning did not train on'
