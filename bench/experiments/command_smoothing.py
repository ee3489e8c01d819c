"""Experiment (bench/results/experiments/command_smoothing_valseeds.json): a policy's arm command
smoothed (EMA, alpha) and its gripper switch delayed (hysteresis ticks), validation scenes:

    python bench/experiments/command_smoothing.py ck CHECKPOINT 6 500000 1:1 0.5:1 0.3:1 1:3
"""
import sys, json, time, multiprocessing as mp
import numpy as np

class Smoothed:
    def __init__(self, inner, alpha, hyst):
        self.inner, self.alpha, self.hyst = inner, alpha, hyst
        for a in ('cameras', 'needs_objects', 'stack_keys', 'n_intentions', 'policy_id', 'sha256', 'kind'):
            setattr(self, a, getattr(inner, a, None))
    def reset(self, seed):
        self.inner.reset(seed); self.prev = None; self.grip = None; self.count = 0
    def warmup(self, n): return self.inner.warmup(n)
    def act(self, obs, frame, intention, deterministic):
        a = np.asarray(self.inner.act(obs, frame, intention, deterministic), np.float32).copy()
        if self.prev is not None:
            a[:4] = self.alpha * a[:4] + (1 - self.alpha) * self.prev[:4]
        if self.hyst > 1:
            if self.grip is None: self.grip = a[4]
            if a[4] != self.grip:
                self.count += 1
                if self.count >= self.hyst: self.grip, self.count = a[4], 0
            else: self.count = 0
            a[4] = self.grip
        self.prev = a
        return a

def jobs_fn(spec, alpha, hyst, jobs):
    import torch; torch.set_num_threads(1)
    from chef_loop import sim_eval
    from chef_policy.runner import PolicyRunner
    from chef_policy.schedule import IntentionSchedule
    from chef_policy.safety import load_limits
    from chef_sim.env import RgbStackingEnv, SimConfig
    from chef_contract.spec import INTENTIONS
    env = RgbStackingEnv(SimConfig(render_images=False, preset='fast'))
    pol = Smoothed(sim_eval.build_policy(spec), alpha, hyst)
    k = INTENTIONS.index('staged') if pol.n_intentions >= len(INTENTIONS) else 0
    runner = PolicyRunner(pol, schedule=IntentionSchedule(fixed=k), deterministic=True)
    return [sim_eval.run_episode(env, runner, s, t, limits=load_limits()).success for t, s in jobs]

if __name__ == '__main__':
    from chef_loop.sim_eval import PolicySpec, episode_seed, TEST_TRIPLET_NAMES
    kind, path, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    variants = [tuple(map(float, v.split(':'))) for v in sys.argv[5:]]
    if kind == 'ts':
        import importlib.util
        spec_b = importlib.util.spec_from_file_location('bl', str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'bench_learning.py'))
        bl = importlib.util.module_from_spec(spec_b); spec_b.loader.exec_module(bl)
        name = path.rsplit('/', 1)[-1].split('.pt')[0].split('_seed')[0]
        spec = PolicySpec('torchscript', path=path, keys=tuple(bl.baseline_keys(name)))
    else:
        spec = PolicySpec('checkpoint', path=path)
    jobs = [(t, episode_seed(seed, i, e)) for i, t in enumerate(TEST_TRIPLET_NAMES) for e in range(n)]
    for alpha, hyst in variants:
        t0 = time.time()
        with mp.get_context('spawn').Pool(2) as pool:
            parts = pool.starmap(jobs_fn, [(spec, alpha, int(hyst), jobs[w::2]) for w in range(2)])
        succ = [x for p in parts for x in p]
        print(json.dumps({'path': path, 'alpha': alpha, 'hyst': hyst, 'success': sum(succ), 'n': len(succ),
                          's': round(time.time() - t0)}), flush=True)
