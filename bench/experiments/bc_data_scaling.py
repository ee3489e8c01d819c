"""Experiment (bench/results/experiments/learning_data_scaling_valseeds.json): the learning bench's plain
BC MLP (bc_mlp_noprev) trained on one or more episode stores, first N episodes (--max-eps), with
variants of loss, width/depth, dropout and updates; each training seed evaluated on validation
scenes (seed 500000) in the ROS-free env. Checkpoints: runs/experiments/<tag>_s<seed>.pt.

    python bench/experiments/bc_data_scaling.py --data runs/bench-learning/data --tag base100 --seeds 3
"""
import json, time, argparse, importlib.util, multiprocessing as mp
from pathlib import Path
import numpy as np
spec_b = importlib.util.spec_from_file_location('bl', str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'bench_learning.py'))
bl = importlib.util.module_from_spec(spec_b); spec_b.loader.exec_module(bl)

def _sampler(d, keys, succ, source):
    if not source:
        return bl.state_sampler(Path(d), keys=keys, successful_only=succ)
    from chef_recorder.dataset import TransitionSampler
    ds, records = bl.data_records(Path(d))        # one data source of a loop's store (tags.data_source)
    records = [r for r in records if (r.metadata.get('tags') or {}).get('data_source') == source
               and (not succ or r.metadata.get('success'))]
    return TransitionSampler(ds, records, tuple(keys), n_step=5, discount=0.99, progress=False)


def load(data_dirs, keys, max_eps=None, succ=False, source=''):
    xs, ys = [], []
    n = 0
    for d in data_dirs:
        eps = bl.flat_episodes(_sampler(d, keys, succ, source))
        for e in eps:
            if max_eps and n >= max_eps: break
            xs.append(e[0][:-1][e[3]]); ys.append(e[1][e[3]]); n += 1
    return np.concatenate(xs), np.concatenate(ys), n

def train(data_dirs, out, updates, seed, width, depth, loss, wd, dropout, max_eps, lr, batch, succ=False,
          source=''):
    import torch; from torch import nn
    torch.set_num_threads(1); torch.manual_seed(seed)
    keys = bl.baseline_keys('bc_mlp_noprev')
    x, y, n = load(data_dirs, keys, max_eps, succ, source)
    mean, std = x.mean(0), x.std(0).clip(1e-2)
    xt = torch.from_numpy((x - mean) / std).float(); yt = torch.from_numpy(y).float()
    layers, d = [], x.shape[1]
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []); d = width
    layers.append(nn.Linear(d, 5))
    class P(nn.Module):
        def __init__(s):
            super().__init__(); s.register_buffer('mean', torch.from_numpy(mean).float())
            s.register_buffer('std', torch.from_numpy(std).float()); s.net = nn.Sequential(*layers)
        def forward(s, o): return s.net((o - s.mean) / s.std)
    m = P(); opt = torch.optim.AdamW(m.net.parameters(), lr=lr, weight_decay=wd)
    rng = np.random.default_rng(seed); t0 = time.perf_counter()
    for _ in range(updates):
        idx = torch.from_numpy(rng.integers(0, len(xt), batch))
        err = m.net(xt[idx]) - yt[idx]
        l = err.abs().mean() if loss == 'l1' else (torch.nn.functional.smooth_l1_loss(m.net(xt[idx]), yt[idx], beta=0.1) if loss == 'huber' else err.pow(2).mean())
        opt.zero_grad(); l.backward(); opt.step()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(m.eval(), xt[:1]).save(out)
    return {'out': out, 'episodes': n, 'train_s': time.perf_counter() - t0}

def evaluate(path, n, seed):
    from chef_loop.sim_eval import PolicySpec, evaluate as ev
    import torch; torch.set_num_threads(1)
    spec = PolicySpec('torchscript', path=path, keys=tuple(bl.baseline_keys('bc_mlp_noprev')))
    return ev(spec, episodes_per_triplet=n, seed=seed).pooled.successes

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', nargs='+'); ap.add_argument('--tag'); ap.add_argument('--updates', type=int, default=10000)
    ap.add_argument('--seeds', type=int, default=2); ap.add_argument('--width', type=int, default=256)
    ap.add_argument('--depth', type=int, default=2); ap.add_argument('--loss', default='mse')
    ap.add_argument('--wd', type=float, default=0.0); ap.add_argument('--dropout', type=float, default=0.0)
    ap.add_argument('--max-eps', type=int, default=0); ap.add_argument('--lr', type=float, default=3e-4)
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--succ', action='store_true', help='the successful episodes only (train_on: successful)')
    ap.add_argument('--source', default='', help='only episodes tagged with this data_source (e.g. scripted_expert)')
    ap.add_argument('--n', type=int, default=8); ap.add_argument('--eval-seed', type=int, default=500000)
    a = ap.parse_args()
    t0 = time.time()
    outs = [f'runs/experiments/{a.tag}_s{s}.pt' for s in range(a.seeds)]
    ctx = mp.get_context('spawn')
    with ctx.Pool(2) as pool:
        tr = pool.starmap(train, [(a.data, o, a.updates, s, a.width, a.depth, a.loss, a.wd, a.dropout, a.max_eps, a.lr, a.batch, a.succ, a.source)
                                      for s, o in enumerate(outs)])
        ev = pool.starmap(evaluate, [(o, a.n, a.eval_seed) for o in outs])
    print(json.dumps({'tag': a.tag, 'episodes': tr[0]['episodes'], 'per_seed': ev, 'total': sum(ev), 'of': 5 * a.n * a.seeds,
                      'rate': round(sum(ev) / (5 * a.n * a.seeds), 3), 'train_s': round(tr[0]['train_s']), 'wall_s': round(time.time() - t0), 'args': vars(a)}), flush=True)
