"""Ablations as one command each: variants of the offline learner on the SAME episode store,
each trained for the same number of updates and evaluated on the cells like Execute.

  multitask  all six intentions (shared critic torso) vs only the staged task
  wrench     with vs without the wrist force-torque input
  size       small vs large actor/critic torsos
  finetune   fine-tune the best policy vs train the same config from scratch, equal updates
  reuse      all data so far vs only the newest stage's episodes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from chef_loop.config import learner_config_path

ABLATIONS = ('multitask', 'wrench', 'size', 'finetune', 'reuse')


@dataclass
class Variant:
    name: str
    overrides: List[str]
    init_from_best: bool = False
    data: str = 'all'                 # all | latest


def variants(name: str) -> List[Variant]:
    if name == 'multitask':
        return [Variant('multi_task', []),
                Variant('single_task', ['learner.intentions=[staged]', 'learner.network.n_intentions=1'])]
    if name == 'wrench':
        return [Variant('with_wrench', ['learner.network.use_wrench=true']),
                Variant('without_wrench', ['learner.network.use_wrench=false'])]
    if name == 'size':
        return [Variant('small', ['learner.network.actor_torso=[64,64]', 'learner.network.critic_torso=[64,64]']),
                Variant('large', ['learner.network.actor_torso=[256,256]',
                                  'learner.network.critic_torso=[256,256,256]'])]
    if name == 'finetune':
        return [Variant('finetune', [], init_from_best=True), Variant('scratch', [])]
    if name == 'reuse':
        return [Variant('all_data', [], data='all'), Variant('latest_stage_only', [], data='latest')]
    raise ValueError(f'unknown ablation {name!r}; choose from {ABLATIONS}')


def run_ablation(run, name: str, steps: Optional[int] = None, episodes_per_triplet: Optional[int] = None,
                 log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train and evaluate every variant of ablation `name` on `run`'s episode store."""
    from chef_loop.explore import train_policy
    from chef_loop.state import atomic_write_json
    from chef_loop.stages import primary_checkpoint
    cfg = run.cfg
    steps = steps or cfg.explore.steps
    ept = episodes_per_triplet or cfg.execute.episodes_per_triplet
    records = run.episodes()
    if not records:
        raise RuntimeError(f'ablation {name}: {run.data_dir} holds no episodes; run `chef loop` first')
    best_id = run.best_policy()
    best = run.state.policy(best_id) if best_id else None
    base_cfg = best['config'] if best else {'learner_config': cfg.explore.learner_config,
                                            'overrides': list(cfg.explore.learner_overrides)}
    out_dir = run.run_dir / 'ablations' / name
    results = []
    it = 1000 + ABLATIONS.index(name)          # evaluation episodes get their own iteration number
    for v in variants(name):
        if v.init_from_best and best is None:
            raise RuntimeError('ablation finetune needs a finished CHEF iteration (a best policy)')
        if v.data == 'latest':
            latest = _latest_stage_records(records)
            ids = [r.id for r in latest]
        else:
            ids = [r.id for r in records]
        log(f'[ablation {name}] {v.name}: {len(ids)} episodes, {steps} updates')
        ckpt, sha, summary = train_policy(str(learner_config_path(base_cfg['learner_config'])),
                                          list(base_cfg['overrides']) + v.overrides, str(run.data_dir), ids,
                                          steps, out_dir / v.name,
                                          init_checkpoint=primary_checkpoint(best) if v.init_from_best else None,
                                          progress=run.progress,
                                          checkpoint_every=cfg.explore.checkpoint_every,
                                          torch_threads=cfg.explore.torch_threads)
        pid = f'ablate-{name}-{v.name}'
        run.state.add_policy(pid, checkpoint=ckpt, sha256=sha,
                             parent=best_id if v.init_from_best else None,
                             config={'learner_config': base_cfg['learner_config'],
                                     'overrides': list(base_cfg['overrides']) + v.overrides},
                             episodes=ids, stage='ablation', iteration=it, metrics={'updates': steps})
        ev = run.evaluate(it, 'ablation', pid, ept, cfg.execute.triplets)
        ev.update(variant=v.name, episodes_trained=len(ids), updates=steps,
                  policy_value=summary.get('policy_value'))
        results.append(ev)
    report = {'ablation': name, 'variants': results}
    atomic_write_json(out_dir / 'result.json', report)
    abl = run.state.data.setdefault('ablations', {})
    abl[name] = report
    run.state.save()
    return report


def _latest_stage_records(records: Sequence) -> List:
    """Episodes of the newest (iteration, stage) present in the store."""
    order = {'collect': 0, 'execute': 1, 'finetune': 2}
    keyed = [((r.metadata.get('iteration') or 0), order.get(r.metadata.get('stage'), -1), r) for r in records
             if r.metadata.get('stage') in order]
    if not keyed:
        return list(records)
    newest = max((k[0], k[1]) for k in keyed)
    return [r for (i, s, r) in keyed if (i, s) == newest]
