"""Experiment: evaluate the Polyak-averaged actor a checkpoint carries (module 'target_actor': an
exponential moving average of the actor when learner.target_tau > 0) instead of its 'actor', on
validation scenes: python bench/experiments/ema_actor_eval.py CKPT [CKPT ...]
(bench/results/experiments/README.md, "Gripper-frame axes", the null results)."""
import json
import sys
from pathlib import Path

import torch


def main():
    torch.set_num_threads(1)
    from chef_loop.sim_eval import PolicySpec, evaluate
    from chef_policy.checkpoint import load_checkpoint, save_checkpoint
    for src in sys.argv[1:]:
        state, cfg, _ = load_checkpoint(src)
        dst = Path('runs/experiments') / (Path(src).parents[1].name + '_ema.pt')
        save_checkpoint(dst, {'actor': state['modules']['target_actor']}, cfg)
        r = evaluate(PolicySpec('checkpoint', path=str(dst)), episodes_per_triplet=8, seed=500000, workers=2)
        print(json.dumps({'src': src, 'variant': 'ema', 'success': r.pooled.successes, 'of': r.pooled.trials}),
              flush=True)


if __name__ == '__main__':
    main()
