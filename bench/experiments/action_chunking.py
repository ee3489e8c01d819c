"""Experiment: action chunking with temporal ensembling (ACT, Zhao et al. 2023) on the learning bench's
plain BC MLP. The MLP reads the same keys as bc_mlp_noprev and predicts the next H commands from each
recorded tick (targets past an episode's end or on invalid ticks are masked); at run time every tick's
command averages all chunks that cover it, weight exp(-m * age) (age 0 = the newest chunk), and the
gripper is the sign of that average. H = 1 is the plain bc_mlp_noprev. Validation scenes (seed 500000).

    python bench/experiments/action_chunking.py --data runs/bench-learning/data --horizon 8 --m 0.0 --seeds 2
"""
import argparse, importlib.util, json, time
import multiprocessing as mp
from pathlib import Path

import numpy as np

spec_b = importlib.util.spec_from_file_location('bl', str(Path(__file__).resolve().parents[1] / 'bench_learning.py'))
bl = importlib.util.module_from_spec(spec_b); spec_b.loader.exec_module(bl)
KEYS = None


def chunk_targets(actions: np.ndarray, valid: np.ndarray, horizon: int):
    """[T, H, 5] targets a[t + h] and [T, H] mask (inside the episode and a valid tick)."""
    t_len = len(actions)
    idx = np.arange(t_len)[:, None] + np.arange(horizon)[None, :]
    inside = idx < t_len
    idx_c = np.minimum(idx, t_len - 1)
    return actions[idx_c], inside & valid[idx_c]


def load(data_dirs, horizon, max_eps=0):
    xs, ys, ms = [], [], []
    keys = bl.baseline_keys('bc_mlp_noprev')
    n = 0
    for d in data_dirs:
        for x, a, _, valid in bl.flat_episodes(bl.state_sampler(Path(d), keys=keys)):
            if max_eps and n >= max_eps:
                break
            y, m = chunk_targets(a, valid, horizon)
            xs.append(x[:-1][valid]); ys.append(y[valid]); ms.append(m[valid]); n += 1
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ms), n


def train(data_dirs, out, horizon, updates, seed, max_eps, width=256, depth=2, lr=3e-4, batch=256):
    import torch
    from torch import nn
    torch.set_num_threads(1); torch.manual_seed(seed)
    x, y, m, n = load(data_dirs, horizon, max_eps)
    mean, std = x.mean(0), x.std(0).clip(1e-2)
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y.reshape(len(y), -1)).float()
    mt = torch.from_numpy(np.repeat(m, 5, axis=1).astype(np.float32))
    layers, d = [], x.shape[1]
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]; d = width
    layers.append(nn.Linear(d, 5 * horizon))

    class P(nn.Module):
        def __init__(s):
            super().__init__()
            s.register_buffer('mean', torch.from_numpy(mean).float())
            s.register_buffer('std', torch.from_numpy(std).float()); s.net = nn.Sequential(*layers)

        def forward(s, o):
            return s.net((o - s.mean) / s.std)
    model = P(); opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    rng = np.random.default_rng(seed); t0 = time.perf_counter()
    for _ in range(updates):
        idx = torch.from_numpy(rng.integers(0, len(xt), batch))
        err = (model.net(xt[idx]) - yt[idx]).pow(2) * mt[idx]
        loss = err.sum() / mt[idx].sum()
        opt.zero_grad(); loss.backward(); opt.step()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(model.eval(), xt[:1]).save(out)
    return {'out': out, 'episodes': n, 'train_s': time.perf_counter() - t0}


class ChunkPolicy:
    """A TorchScript f(x [1, D]) -> [1, 5 H] acting with temporal ensembling over its last H chunks."""

    kind = 'torchscript'
    cameras = ()
    needs_objects = True
    n_intentions = 1
    sha256 = ''

    def __init__(self, path, keys, horizon, m, execute=1):
        import torch
        from chef_contract.spec import STATE_OBSERVATION_NAMES
        self.stack_keys = STATE_OBSERVATION_NAMES
        self.module = torch.jit.load(path, map_location='cpu').eval()
        self.keys, self.horizon, self.m, self.execute = tuple(keys), horizon, m, execute
        self.policy_id = f'chunk:{path}'
        self.chunks = []                      # (tick predicted, [H, 5])
        self.tick = 0

    def reset(self, seed):
        self.chunks, self.tick = [], 0

    def act(self, obs, frame, intention, deterministic):
        import torch
        if self.execute <= 1 or self.tick % self.execute == 0:
            x = np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in self.keys])[None]
            with torch.inference_mode():
                c = self.module(torch.from_numpy(x)).reshape(self.horizon, 5).numpy()
            self.chunks.append((self.tick, c))
            self.chunks = [(t, c) for t, c in self.chunks if self.tick - t < self.horizon]
        if self.execute > 1:                  # open loop: the newest chunk's entry for this tick
            t0, c = self.chunks[-1]
            a = c[self.tick - t0].copy()
        else:
            num, den = np.zeros(5, np.float32), 0.0
            for t, c in self.chunks:
                age = self.tick - t
                w = float(np.exp(-self.m * age))
                num += w * c[age]; den += w
            a = num / den
        self.tick += 1
        a[4] = 1.0 if a[4] > 0 else -1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def warmup(self, iterations):
        return 0.0


def evaluate(path, horizon, m, execute, n, seed, part, parts):
    import torch
    torch.set_num_threads(1)
    from chef_loop.sim_eval import TEST_TRIPLET_NAMES, episode_seed, run_episode
    from chef_policy.runner import PolicyRunner
    from chef_policy.schedule import IntentionSchedule
    from chef_sim.env import RgbStackingEnv, SimConfig
    jobs = [(t, episode_seed(seed, i, e)) for i, t in enumerate(TEST_TRIPLET_NAMES) for e in range(n)][part::parts]
    env = RgbStackingEnv(SimConfig(render_images=False, preset='fast'))
    policy = ChunkPolicy(path, bl.baseline_keys('bc_mlp_noprev'), horizon, m, execute)
    runner = PolicyRunner(policy, schedule=IntentionSchedule(fixed=0), deterministic=True)
    try:
        return sum(run_episode(env, runner, s, t).success for t, s in jobs)
    finally:
        env.close()


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', nargs='+', default=['runs/bench-learning/data'])
    ap.add_argument('--horizon', type=int, default=8)
    ap.add_argument('--m', type=float, nargs='+', default=[0.0], help='temporal-ensemble weights exp(-m age)')
    ap.add_argument('--execute', type=int, default=1, help='>1: open loop, a new chunk every N ticks')
    ap.add_argument('--updates', type=int, default=10000); ap.add_argument('--seeds', type=int, default=2)
    ap.add_argument('--max-eps', type=int, default=0)
    ap.add_argument('--n', type=int, default=8); ap.add_argument('--eval-seed', type=int, default=500000)
    ap.add_argument('--tag', default=''); ap.add_argument('--reuse', action='store_true')
    a = ap.parse_args()
    tag = a.tag or f'chunk_h{a.horizon}'
    t0 = time.time()
    outs = [f'runs/experiments/{tag}_s{s}.pt' for s in range(a.seeds)]
    ctx = mp.get_context('spawn')
    with ctx.Pool(2) as pool:
        todo = [(a.data, o, a.horizon, a.updates, s, a.max_eps) for s, o in enumerate(outs)
                if not (a.reuse and Path(o).exists())]
        tr = pool.starmap(train, todo) if todo else []
        rows = []
        for m in a.m:
            per_seed = []
            for o in outs:
                per_seed.append(sum(pool.starmap(evaluate, [(o, a.horizon, m, a.execute, a.n, a.eval_seed, p, 2)
                                                            for p in range(2)])))
            rows.append({'m': m, 'per_seed': per_seed, 'total': sum(per_seed), 'of': 5 * a.n * len(outs),
                         'rate': round(sum(per_seed) / (5 * a.n * len(outs)), 3)})
    print(json.dumps({'tag': tag, 'horizon': a.horizon, 'execute': a.execute, 'rows': rows,
                      'train_s': round(tr[0]['train_s']) if tr else None, 'wall_s': round(time.time() - t0),
                      'args': vars(a)}), flush=True)
