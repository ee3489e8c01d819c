"""The four CHEF stages on simulated cells, with resume at stage granularity.

  C collect  - online multi-task RL (the trainer node's SAC-X learner) acting on N cells, every
               episode recorded; optionally a noisy scripted expert as an extra, tagged data source.
  H explore  - K offline-RL configurations (CRR) sampled from a declared search space, each trained
               on ALL episodes so far, run on Ray Tune (local by default, a cluster by address);
               the top `candidates` by an offline metric go on.
  E execute  - the candidates act on the cells for E episodes per test triplet: evaluation AND new
               data; success per triplet with Wilson 95 % intervals. Selection rule: highest pooled
               success over the evaluated triplets; ties -> higher mean staged return.
  F finetune - the best policy continues training on all data (now including the Execute
               episodes), then is evaluated like Execute; the update count is compared with the
               from-scratch training that produced it.

Every episode carries tags (stage, iteration, data_source, policy_id, candidate); stages count what
the store already holds for their tags before acting, so a stage re-entered after a crash neither
loses nor duplicates data. Explore trials train into fixed per-trial directories, checkpoint every
`explore.checkpoint_every` updates and resume from their newest checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from chef_contract.config import ConfigError, config_hash, load_config, save_config
from chef_loop.config import STAGES, LoopConfig, learner_config_path
from chef_loop.jobs import EpisodeJob, EpisodeOutcome
from chef_loop.state import RunState, atomic_write_json
from chef_loop.stats import Rate, success_table

_STAGE_SEED = {'collect': 0, 'collect_scripted': 1, 'explore': 2, 'execute': 3, 'finetune': 4,
               'finetune_scratch': 5}


def tag(record, key: str, default=None):
    tags = record.metadata.get('tags') or {}
    return tags.get(key, record.metadata.get(key, default))


class ChefRun:
    """One CHEF run directory: config, state, lineage, episode store, stages."""

    def __init__(self, cfg: LoopConfig, log: Callable[[str], None] = print, progress: bool = True,
                 record_config: bool = True):
        self.cfg = cfg
        self.log = log
        self.progress = progress
        self.run_dir = cfg.run_dir
        self.data_dir = cfg.data_path
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg_file = self.run_dir / 'config.yaml'
        if cfg_file.is_file():
            old = load_config(LoopConfig, cfg_file)
            from chef_loop.cluster import without_placement      # where it runs is not what it is
            if config_hash(without_placement(old)) != config_hash(without_placement(cfg)):
                raise ConfigError(f'{self.run_dir} was started with a different config ({cfg_file}); '
                                  'resume with the same config or choose a new --name')
        if record_config or not cfg_file.is_file():   # the same run; placement, timeouts, iterations as now
            save_config(cfg, cfg_file)
        self.state = RunState(self.run_dir)
        self._dataset = None
        self._placements: Dict[tuple, Dict[str, Any]] = {}     # (iteration, stage) -> label -> cell workers
        from chef_loop.ray_session import clean_stale_ray
        clean_stale_ray(self.run_dir, log)       # what a killed earlier run's local Ray left behind

    # --- helpers ----------------------------------------------------------------------------------
    @property
    def dataset(self):
        if self._dataset is None:
            from chef_recorder.dataset import Dataset
            self._dataset = Dataset(self.data_dir)
        return self._dataset

    def episodes(self, **filters) -> list:
        """Every recorded episode, complete or not: what the learners train on
        (Dataset.training_records)."""
        return self.dataset.training_records(**filters)

    def ended(self, **filters) -> list:
        """Episodes that ran to their end, whether or not every tick was recorded: what counts for
        evaluation and for a stage's episode quota (success comes from the cell's end event)."""
        return [r for r in self.episodes(**filters) if r.metadata.get('status') == 'end']

    def stage_dir(self, iteration: int, stage: str) -> Path:
        d = self.run_dir / f'iter_{iteration:02d}' / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def seed(self, iteration: int, stage: str, index: int) -> int:
        return (self.cfg.seed * 1_000_000 + iteration * 10_000 + _STAGE_SEED[stage] * 2_000 + index) % (2 ** 31)

    def session(self, iteration: int, stage: str, label: str, graph_args: Dict[str, Any]):
        from chef_loop.cells import CellSession
        log = self.stage_dir(iteration, stage) / f'{label}.graph.log'
        self.log(f'  starting {self.cfg.cells.cells} cell(s) for {stage}/{label} (log: {log})')
        if self.cfg.ray_address:
            if self.cfg.cells.backend == 'sim' and not graph_args.get('train'):
                from chef_loop.ray_cells import RayCellSession
                return RayCellSession(self.cfg, self.data_dir, log, graph_args, self.run_dir, log=self.log)
            self.log(f'  {stage}/{label}: these cells run on this machine, not on the Ray cluster ('
                     + ('the online learner trains inside their graph on this store)' if graph_args.get('train')
                        else f'cells.backend {self.cfg.cells.backend})'))
        return CellSession(self.cfg.cells, self.data_dir, log, graph_args=graph_args)

    def wait_recorded(self, outcomes: Sequence[EpisodeOutcome], timeout_s: float = 60.0) -> None:
        """Block until the recorder has published every finished episode in the catalog."""
        want = {o.event.episode_id for o in outcomes if o.event is not None}
        deadline = time.monotonic() + timeout_s
        while want:
            have = {r.id for r in self.episodes()}
            want -= have
            if not want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if want:
            self.log(f'  warning: {len(want)} episode(s) not in the catalog after {timeout_s:.0f} s '
                     f'(run `chef data ls --all --data-dir {self.data_dir}`)')

    def run_jobs(self, iteration: int, stage: str, label: str, graph_args: Dict[str, Any],
                 jobs: List[EpisodeJob]) -> List[EpisodeOutcome]:
        if not jobs:
            return []
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=f'{stage}/{label}', unit='ep', disable=not self.progress)
        wins = [0]

        def on_outcome(o: EpisodeOutcome):
            wins[0] += int(o.success)
            bar.update(1)
            bar.set_postfix(success=f'{wins[0]}/{bar.n}')
        with self.session(iteration, stage, label, graph_args) as s:
            outcomes = s.run(jobs, on_outcome=on_outcome)
            self.wait_recorded(outcomes)
        bar.close()
        if getattr(s, 'placement', None):       # cells on Ray: which node ran which worker
            self._placements.setdefault((iteration, stage), {})[label] = s.placement
        failed = [o for o in outcomes if not o.ok]
        if failed:
            self.log(f'  {len(failed)} episode(s) failed: {sorted({o.reason for o in failed})}')
        return outcomes

    def triplet_jobs(self, iteration: int, stage: str, triplets: Sequence[str], per_triplet: int,
                     existing: Sequence, tags: Dict[str, Any]) -> List[EpisodeJob]:
        """Jobs that bring every triplet up to `per_triplet` complete episodes (resume-safe: the
        planned seeds the store has no episode for, as `missing_episodes`)."""
        jobs = []
        for ti, t in enumerate(triplets):
            mine = [r for r in existing if r.metadata.get('triplet') == t]
            plan = [ti * 1000 + k for k in range(per_triplet)]
            jobs += [EpisodeJob(t, self.seed(iteration, stage, k), dict(tags))
                     for k in self.missing_episodes(iteration, stage, plan, mine)]
        return jobs

    def missing_episodes(self, iteration: int, stage: str, plan: Sequence[int], existing: Sequence) -> List[int]:
        """Indices k of a stage's episode `plan` (seed `self.seed(iteration, stage, k)`) that the store
        has no ended episode for, at most `len(plan) - len(existing)`: a stage re-entered after a kill
        reruns exactly the seeds it lost, also when cells finished them out of order."""
        have = {r.metadata.get('seed') for r in existing}
        todo = [k for k in plan if self.seed(iteration, stage, k) not in have]
        return todo[:max(0, len(plan) - len(existing))]

    def table(self, records: Sequence, triplets: Optional[Sequence[str]] = None) -> Dict[str, Rate]:
        rows = [(r.metadata.get('triplet'), bool(r.metadata.get('success'))) for r in records
                if triplets is None or r.metadata.get('triplet') in triplets]
        return success_table(rows)

    def mean_staged_return(self, records: Sequence) -> float:
        vals = [float((r.metadata.get('returns') or {}).get('staged', 0.0)) for r in records]
        return sum(vals) / len(vals) if vals else 0.0

    def best_policy(self) -> Optional[str]:
        """The newest iteration's selected policy (finetune's choice, else execute's)."""
        for i in reversed(self.state.iterations()):
            for stage in ('finetune', 'execute'):
                pid = self.state.artefacts(i, stage).get('best_policy')
                if pid:
                    return pid
        return None

    def previous_best(self, iteration: int) -> Optional[Dict[str, Any]]:
        if iteration == 0:
            return None
        art = self.state.artefacts(iteration - 1, 'finetune') or self.state.artefacts(iteration - 1, 'execute')
        pid = art.get('best_policy')
        return self.state.policy(pid) if pid else None

    # --- C: collect -------------------------------------------------------------------------------
    def collect(self, iteration: int) -> Dict[str, Any]:
        c = self.cfg.collect
        base = {'stage': 'collect', 'iteration': iteration}
        mine = self.ended(stage='collect', iteration=iteration)
        scripted = [r for r in mine if tag(r, 'data_source') == 'scripted_expert']
        learner = [r for r in mine if tag(r, 'data_source') == 'online_learner']
        triplets = c.triplets
        # 1. the noisy scripted expert (optional extra source, tagged as such)
        todo = self.missing_episodes(iteration, 'collect_scripted', range(c.scripted_episodes), scripted)
        if todo:
            jobs = [EpisodeJob(triplets[k % len(triplets)], self.seed(iteration, 'collect_scripted', k),
                               dict(base, data_source='scripted_expert',
                                    policy_id=f'scripted(noise={c.scripted_noise:g})'))
                    for k in todo]
            self.run_jobs(iteration, 'collect', 'scripted', {'policy': 'scripted', 'noise': c.scripted_noise},
                          jobs)
        # 2. online multi-task RL: the trainer node learns from every episode while the cells act
        parent = self.previous_best(iteration)
        learner_dir = self.stage_dir(iteration, 'collect') / 'learner'
        todo = self.missing_episodes(iteration, 'collect', range(c.episodes), learner)
        if todo:
            jobs = [EpisodeJob(triplets[k % len(triplets)], self.seed(iteration, 'collect', k),
                               dict(base, data_source='online_learner', policy_id=f'collect-{iteration}'))
                    for k in todo]
            overrides = list(c.learner_overrides)
            if parent:     # offline-to-online: the learner starts from the best policy so far
                # (one command per tick: the online learner does not train chunks; a chunking
                # parent's actor loads as its first step)
                overrides += network_overrides(primary_checkpoint(parent), action_horizon=1)
            self.run_jobs(iteration, 'collect', 'learner', {
                'policy': '', 'train': True, 'learner': str(learner_config_path(c.learner_config)),
                'learner_overrides': ';'.join(overrides), 'trainer_run_dir': str(learner_dir.resolve()),
                'trainer_init': primary_checkpoint(parent) if parent else '',
                'trainer_max_updates': c.max_updates}, jobs)
        mine = self.ended(stage='collect', iteration=iteration)
        arts: Dict[str, Any] = {'episodes': len(mine)}
        for source in ('scripted_expert', 'online_learner'):
            recs = [r for r in mine if tag(r, 'data_source') == source]
            arts[source] = {'episodes': len(recs), 'success': self.table(recs)['mean'].to_dict(),
                            'mean_staged_return': self.mean_staged_return(recs)}
        latest = learner_dir / 'latest.json'
        if latest.is_file():
            info = json.loads(latest.read_text())
            pid = f'collect-{iteration}'
            self.state.add_policy(pid, checkpoint=info['path'], sha256=info['sha256'],
                                  parent=parent['policy_id'] if parent else None,
                                  config={'learner_config': c.learner_config, 'overrides': c.learner_overrides},
                                  episodes=[r.id for r in self.episodes()], stage='collect',
                                  iteration=iteration, metrics={'updates': info.get('step')})
            arts['learner_policy'] = pid
        return arts

    # --- H: explore -------------------------------------------------------------------------------
    def sample_trials(self, iteration: int) -> List[Dict[str, Any]]:
        """`explore.trials` distinct configurations from the search space (seeded).

        An all-`choice` space is sampled without replacement (a grid in random order, repeated only
        once every combination is used); continuous dimensions are resampled on an exact repeat.
        """
        import itertools
        e = self.cfg.explore
        rng = random.Random(self.seed(iteration, 'explore', 0))
        space = sorted(e.search_space.items())
        for key, spec in space:
            if len(spec) != 1 or next(iter(spec)) not in ('choice', 'uniform', 'loguniform', 'randint'):
                raise ConfigError(f'explore.search_space.{key}: exactly one of choice, uniform, loguniform, '
                                  f'randint, got {spec}')

        def draw(kind, arg):
            if kind == 'choice':
                return rng.choice(list(arg))
            if kind == 'uniform':
                return rng.uniform(float(arg[0]), float(arg[1]))
            if kind == 'loguniform':
                return math.exp(rng.uniform(math.log(float(arg[0])), math.log(float(arg[1]))))
            return rng.randint(int(arg[0]), int(arg[1]))

        if space and all(next(iter(spec)) == 'choice' for _, spec in space):
            combos = list(itertools.product(*(list(spec['choice']) for _, spec in space)))
            rng.shuffle(combos)
            picks = [dict(zip([k for k, _ in space], combos[k % len(combos)])) for k in range(e.trials)]
        else:
            picks, seen = [], set()
            for _ in range(e.trials):
                for _attempt in range(100):
                    params = {key: draw(*next(iter(spec.items()))) for key, spec in space}
                    sig = json.dumps(params, sort_keys=True)
                    if sig not in seen:
                        break
                seen.add(sig)
                picks.append(params)
        return [{'trial': k, 'params': p} for k, p in enumerate(picks)]

    def explore(self, iteration: int) -> Dict[str, Any]:
        from chef_loop.cluster import explore_address
        from chef_loop.explore import run_trials
        e = self.cfg.explore
        sdir = self.stage_dir(iteration, 'explore')
        trials_file = sdir / 'trials.json'
        if trials_file.is_file():
            trials = json.loads(trials_file.read_text())
        else:
            trials = self.sample_trials(iteration)
            atomic_write_json(trials_file, trials)
        from chef_loop.config import trial_steps
        from chef_loop.explore import trial_overrides
        for t in trials:                 # updates per trial (explore.steps_per_algorithm, else steps)
            t['steps'] = trial_steps(e, list(e.learner_overrides) + trial_overrides(t['params']))
        data_file = sdir / 'data.json'
        if data_file.is_file():                 # a re-entered stage keeps its split
            split = json.loads(data_file.read_text())
            episode_ids, holdout_ids = split['episodes'], split.get('holdout', [])
        else:
            records = self.episodes()
            if not records:
                raise RuntimeError('explore: the episode store is empty; run collect first')
            episode_ids, holdout_ids = holdout_split([r.id for r in records], e.holdout_fraction)
            atomic_write_json(data_file, {'episodes': episode_ids, 'holdout': holdout_ids})
        base = str(learner_config_path(e.learner_config))
        results = run_trials(trials, base_config=base, base_overrides=list(e.learner_overrides),
                             data_dir=str(self.data_dir), episode_ids=episode_ids, steps=e.steps,
                             trial_root=sdir / 'trials', ray_address=explore_address(self.cfg),
                             cluster=self.cfg.cluster if self.cfg.ray_address else None,
                             max_concurrent=e.max_concurrent, cpus_per_trial=e.cpus_per_trial,
                             torch_threads=e.torch_threads, log=self.log, progress=self.progress,
                             checkpoint_every=e.checkpoint_every, run_dir=self.run_dir)
        from chef_loop.explore import needs_ope, score_trials_fqe
        if needs_ope(e.select_metric):
            score_trials_fqe(results, str(self.data_dir), holdout_ids or episode_ids, sdir / 'trials',
                             updates=e.fqe_updates, workers=e.max_concurrent, log=self.log)
        for r in results:
            r['score'] = _metric(dict(r.get('ope') or {}, **r.get('summary', {})), e.select_metric)
        ok = [r for r in results if r.get('checkpoint') and r['score'] is not None]
        if not ok:
            raise RuntimeError(f'explore: no trial finished with metric {e.select_metric!r}; see {sdir}')
        ok.sort(key=lambda r: r['score'], reverse=(e.select_mode == 'max'))
        candidates = []
        for r in ok[:e.candidates]:
            pid = f'explore-{iteration}-t{r["trial"]}'
            self.state.add_policy(pid, checkpoint=r['checkpoint'], sha256=r['sha256'], parent=None,
                                  config={'learner_config': e.learner_config,
                                          'overrides': list(r['overrides'])},
                                  episodes=episode_ids, stage='explore', iteration=iteration,
                                  metrics={'score': r['score'], 'metric': e.select_metric,
                                           'updates': int(r.get('steps') or e.steps)})
            candidates.append(pid)
        if e.ensemble:
            candidates.append(self.add_ensemble(f'explore-{iteration}-ens{e.ensemble}', ok[:e.ensemble],
                                                sdir / 'ensemble', e.learner_config, stage='explore',
                                                iteration=iteration,
                                                episodes=episode_ids,
                                                metrics={'score': ok[0]['score'], 'metric': e.select_metric,
                                                         'updates': sum(int(r.get('steps') or e.steps)
                                                                        for r in ok[:e.ensemble])}))
        atomic_write_json(sdir / 'results.json', results)
        return {'trials': [{k: r.get(k) for k in ('trial', 'params', 'score', 'checkpoint', 'error')}
                           for r in results],
                'candidates': candidates, 'episodes': len(episode_ids), 'holdout_episodes': len(holdout_ids),
                'metric': e.select_metric}

    def add_ensemble(self, pid: str, members: Sequence[Dict[str, Any]], out_dir: Path, learner_config: str,
                     parent: Optional[str] = None, **record) -> str:
        """Register policy `pid`: the `members` (dicts with checkpoint and overrides) that
        `learner_config` trained, acting as one through an ensemble manifest in `out_dir`
        (chef_policy.ensemble); its config lists the members so fine-tuning can train each."""
        from chef_policy.ensemble import ENSEMBLE_SUFFIX, load_ensemble, write_ensemble
        path = Path(out_dir) / f'{pid}{ENSEMBLE_SUFFIX}'
        sha = write_ensemble(path, [m['checkpoint'] for m in members])
        load_ensemble(path, sha)            # every member loads and reads the same inputs, or PolicyError
        self.state.add_policy(pid, checkpoint=str(path), sha256=sha, parent=parent,
                              config={'learner_config': learner_config,
                                      'overrides': list(members[0]['overrides']),
                                      'members': [{'checkpoint': m['checkpoint'], 'overrides': list(m['overrides'])}
                                                  for m in members]},
                              **record)
        return pid

    # --- E: execute -------------------------------------------------------------------------------
    def evaluate(self, iteration: int, stage: str, policy_id: str, episodes_per_triplet: int,
                 triplets: Sequence[str]) -> Dict[str, Any]:
        pol = self.state.policy(policy_id)
        existing = [r for r in self.ended(stage=stage, iteration=iteration)
                    if tag(r, 'candidate') == policy_id]
        tags = {'stage': stage, 'iteration': iteration, 'candidate': policy_id, 'policy_id': policy_id,
                'data_source': 'evaluation', 'intention': 'staged'}
        jobs = self.triplet_jobs(iteration, stage, triplets, episodes_per_triplet, existing, tags)
        self.run_jobs(iteration, stage, policy_id, {
            'policy': pol['checkpoint'], 'deterministic': self.cfg.execute.deterministic}, jobs)
        recs = [r for r in self.ended(stage=stage, iteration=iteration) if tag(r, 'candidate') == policy_id]
        table = self.table(recs, triplets)
        return {'policy': policy_id, 'episodes': len(recs),
                'success': {k: v.to_dict() for k, v in table.items()},
                'mean_staged_return': self.mean_staged_return(recs)}

    def execute(self, iteration: int) -> Dict[str, Any]:
        x = self.cfg.execute
        candidates = list(self.state.artefacts(iteration, 'explore').get('candidates', []))
        if not candidates:
            raise RuntimeError('execute: no candidates (run explore first)')
        prev = self.previous_best(iteration)
        if x.include_previous_best and prev and prev['policy_id'] not in candidates:
            candidates.append(prev['policy_id'])      # same seeds: the new policy must beat it
        evals = [self.evaluate(iteration, 'execute', pid, x.episodes_per_triplet, x.triplets)
                 for pid in candidates]
        best = max(evals, key=lambda ev: (ev['success']['mean']['rate'], ev['mean_staged_return']))
        return {'evaluations': evals, 'best_policy': best['policy'],
                'previous_best': prev['policy_id'] if prev else None,
                'rule': 'highest pooled success over the evaluated triplets (the previous iteration\'s '
                        'best policy included, on the same seeds); ties: higher mean staged return'}

    # --- F: finetune ------------------------------------------------------------------------------
    def train(self, *args, **kwargs):
        """chef_loop.explore.train_policy here, or as a Ray task on the cluster (`ray_address`)."""
        from chef_loop.explore import train_policy
        if not self.cfg.ray_address:
            return train_policy(*args, **kwargs)
        from chef_loop.cluster import train_on_cluster
        return train_on_cluster(self.cfg, self.run_dir, train_policy, args, dict(kwargs, progress=False),
                                log=self.log)

    def finetune(self, iteration: int) -> Dict[str, Any]:
        f = self.cfg.finetune
        exe = self.state.artefacts(iteration, 'execute')
        parent_id = exe['best_policy']
        parent = self.state.policy(parent_id)
        parent_eval = next(ev for ev in exe['evaluations'] if ev['policy'] == parent_id)
        if f.steps == 0:
            return {'best_policy': parent_id, 'skipped': True}
        sdir = self.stage_dir(iteration, 'finetune')
        episode_ids = self.finetune_episodes(sdir)
        pid = f'finetune-{iteration}'
        self.train_like(pid, parent_id, episode_ids, sdir / 'train', from_parent=True, iteration=iteration)
        # both counts are one training's updates summed over an ensemble's members (policy metrics)
        arts: Dict[str, Any] = {'policy': pid, 'parent': parent_id,
                                'updates': self.state.policy(pid)['metrics'].get('updates'),
                                'parent_updates': parent['metrics'].get('updates')}
        if f.episodes_per_triplet:
            ev = self.evaluate(iteration, 'finetune', pid, f.episodes_per_triplet, self.cfg.execute.triplets)
            arts['evaluation'] = ev
            better = (ev['success']['mean']['rate'], ev['mean_staged_return']) >= (
                parent_eval['success']['mean']['rate'], parent_eval['mean_staged_return'])
            arts['best_policy'] = pid if better else parent_id
        else:     # not evaluated: never replace a measured policy with an unmeasured one
            arts['best_policy'] = parent_id
        if f.scratch_baseline:
            sid = f'scratch-{iteration}'
            self.train_like(sid, parent_id, episode_ids, sdir / 'scratch', from_parent=False, iteration=iteration)
            arts['scratch'] = self.evaluate(iteration, 'finetune_scratch', sid, f.episodes_per_triplet or 1,
                                            self.cfg.execute.triplets)
        return arts

    def train_like(self, pid: str, parent_id: str, episode_ids: Sequence[str], out_dir: Path,
                   from_parent: bool, iteration: int) -> None:
        """Register `pid`: `finetune.steps` updates of the parent's learner on `episode_ids`, starting
        from the parent's weights (`from_parent`, stage finetune) or from scratch (stage
        finetune_scratch, the compute baseline). An ensemble parent trains each member alike and
        gives an ensemble of the results."""
        f = self.cfg.finetune
        parent = self.state.policy(parent_id)
        stage = 'finetune' if from_parent else 'finetune_scratch'
        members = parent['config'].get('members') or [{'checkpoint': parent['checkpoint'],
                                                        'overrides': parent['config']['overrides']}]
        trained = []
        for k, m in enumerate(members):
            overrides = list(m['overrides']) + list(f.learner_overrides)
            ckpt, sha, _ = self.train(str(learner_config_path(parent['config']['learner_config'])),
                                      overrides, str(self.data_dir), list(episode_ids), f.steps,
                                      out_dir / f'm{k}' if len(members) > 1 else out_dir,
                                      init_checkpoint=m['checkpoint'] if from_parent else None,
                                      progress=self.progress, checkpoint_every=f.checkpoint_every,
                                      torch_threads=self.cfg.explore.torch_threads)
            trained.append({'checkpoint': ckpt, 'sha256': sha, 'overrides': overrides})
        record = dict(stage=stage, iteration=iteration, episodes=list(episode_ids),
                      metrics={'updates': f.steps * len(trained)})
        if len(trained) > 1:
            self.add_ensemble(pid, trained, out_dir, parent['config']['learner_config'],
                              parent=parent_id if from_parent else None, **record)
            return
        config = dict(parent['config'], overrides=trained[0]['overrides'])
        self.state.add_policy(pid, checkpoint=trained[0]['checkpoint'], sha256=trained[0]['sha256'],
                              parent=parent_id if from_parent else None, config=config, **record)

    def finetune_episodes(self, stage_dir: Path) -> List[str]:
        """Every episode in the store when fine-tuning first started, kept in `data.json`: a stage
        re-entered after a kill resumes training on (and names in the lineage) exactly that set, not
        the evaluation episodes it recorded itself before the kill."""
        data_file = stage_dir / 'data.json'
        if data_file.is_file():
            return json.loads(data_file.read_text())['episodes']
        episode_ids = [r.id for r in self.episodes()]
        atomic_write_json(data_file, {'episodes': episode_ids})
        return episode_ids

    # --- the loop ---------------------------------------------------------------------------------
    def run_stage(self, iteration: int, stage: str, force: bool = False) -> Dict[str, Any]:
        if self.state.is_done(iteration, stage) and not force:
            self.log(f'[iteration {iteration}] {stage}: done earlier, skipped')
            return self.state.artefacts(iteration, stage)
        self.log(f'[iteration {iteration}] {stage}')
        self.state.mark_running(iteration, stage)
        t0 = time.monotonic()
        arts = getattr(self, stage)(iteration)
        arts['wall_s'] = round(time.monotonic() - t0, 1)
        if (iteration, stage) in self._placements:
            arts['ray_cells'] = self._placements.pop((iteration, stage))
        self.state.mark_done(iteration, stage, arts)
        return arts

    def loop(self, stages: Sequence[str] = STAGES) -> None:
        for i in range(self.cfg.iterations):
            for stage in stages:
                self.run_stage(i, stage)


def primary_checkpoint(policy: Dict[str, Any]) -> str:
    """The one network a learner can start from: the policy's checkpoint, or for an ensemble its
    first (best-scored) member's."""
    members = (policy.get('config') or {}).get('members')
    return members[0]['checkpoint'] if members else policy['checkpoint']


def network_overrides(checkpoint: str, **replace: Any) -> List[str]:
    """Learner overrides that give a learner the network of `checkpoint` (so the online learner
    of iteration k > 0 can start from iteration k-1's offline policy, actor and critic), with the
    fields in `replace` set to other values."""
    from chef_policy.checkpoint import describe
    net = dict(describe(checkpoint)['config'], **replace)
    return [f'learner.network.{k}={json.dumps(v)}' for k, v in sorted(net.items())]


def holdout_split(episode_ids: Sequence[str], fraction: float):
    """(training ids, held-out ids): an episode is held out when a stable hash of its id falls in
    the lowest `fraction` (so it stays held out in every later iteration); at least one is held out
    when fraction > 0 and there are two or more episodes, and at least one always trains (two
    episodes whose hashes both fall under the fraction left explore nothing to train on)."""
    import hashlib
    if fraction <= 0 or len(episode_ids) < 2:
        return list(episode_ids), []
    key = {i: int(hashlib.sha256(i.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for i in episode_ids}
    held = [i for i in episode_ids if key[i] < fraction]
    if not held:
        held = [min(episode_ids, key=key.get)]
    elif len(held) == len(episode_ids):
        held.remove(max(episode_ids, key=key.get))
    return [i for i in episode_ids if i not in set(held)], held


def _metric(summary: Dict[str, Any], name: str) -> Optional[float]:
    """A metric of a trial summary: top level (policy_value, ...), else its final, else its mean row."""
    for source in (summary, summary.get('final') or {}, summary.get('mean') or {}):
        v = source.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None
