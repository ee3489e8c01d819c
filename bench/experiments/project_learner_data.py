"""Experiment (bench/results/experiments/learning_loop_store_valseeds.json): one of the learning bench's
project learners (bench_learning.CHEF_LEARNERS, its own episode selection) trained on any episode
store, N training seeds, each evaluated on validation scenes (seed 500000, 8 per triplet):

    python bench/experiments/project_learner_data.py chef_bc runs/large/data runs/experiments/chef_bc_large 10000 2
"""
import sys, json, time, importlib.util, multiprocessing as mp
spec_b = importlib.util.spec_from_file_location('bl', str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'bench_learning.py'))
bl = importlib.util.module_from_spec(spec_b); spec_b.loader.exec_module(bl)
def tr(name, data, out, updates, seed, extra=()):
    import torch; torch.set_num_threads(1)
    if extra:        # in the worker: a spawned process re-imports bench_learning
        bl.CHEF_LEARNERS[name] = (bl.CHEF_LEARNERS[name][0], bl.CHEF_LEARNERS[name][1] + list(extra))
    r = bl.train_chef(name, data, out, updates, seed=seed); return r['spec']
def ev(spec, n, seed):
    import torch; torch.set_num_threads(1)
    from chef_loop.sim_eval import evaluate
    return evaluate(spec, episodes_per_triplet=n, seed=seed).pooled.successes
if __name__ == '__main__':
    name, data, out, updates, seeds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    extra = sys.argv[6:]
    t0 = time.time()
    with mp.get_context('spawn').Pool(2) as pool:
        specs = pool.starmap(tr, [(name, data, out, updates, s, extra) for s in range(seeds)])
        res = pool.starmap(ev, [(sp, 8, 500000) for sp in specs])
    print(json.dumps({'tag': f'{name}@{data}', 'extra': extra, 'per_seed': res, 'total': sum(res), 'of': 40 * seeds,
                      'ckpts': [s.path for s in specs], 'wall_s': round(time.time() - t0)}), flush=True)
