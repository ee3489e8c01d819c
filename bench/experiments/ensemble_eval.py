"""Experiment: evaluate checkpoints acting as one (chef_policy.ensemble.EnsemblePolicy) on validation
scenes: python bench/experiments/ensemble_eval.py EPISODES_PER_TRIPLET SEED CKPT CKPT [...]
(runs/experiments/*.pt: bc_data_scaling.py's TorchScript MLPs; */checkpoints/*.pt and anything else: chef
checkpoints)."""
import sys, json, importlib.util
spec_b = importlib.util.spec_from_file_location('bl', str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'bench_learning.py'))
bl = importlib.util.module_from_spec(spec_b); spec_b.loader.exec_module(bl)
from chef_loop.sim_eval import PolicySpec, evaluate
if __name__ == '__main__':
    n, seed, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    keys = tuple(bl.baseline_keys('bc_mlp_noprev'))
    mk = lambda p: PolicySpec('torchscript', path=p, keys=keys) if p.endswith('.pt') and 'runs/experiments/' in p and '/checkpoints/' not in p else PolicySpec('checkpoint', path=p)
    spec = PolicySpec('ensemble', members=tuple(mk(p) for p in paths))
    r = evaluate(spec, episodes_per_triplet=n, seed=seed, workers=2)
    print(json.dumps({'ensemble': paths, 'success': r.pooled.successes, 'of': r.pooled.trials}), flush=True)
