"""`chef report`: an HTML page with PNG plots for a CHEF run (runs/<name>/report/index.html).

Contents: success per stage x test triplet with Wilson 95 % intervals; learning curves of every
learner (online collect learner, explore trials, fine-tuning); data volume per stage; an image strip
and a GIF of the best policy's best episode (front-left camera); lineage of every policy; ablations.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from chef_loop.config import TEST_TRIPLET_NAMES
from chef_loop.summary import stage_rows

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>CHEF run {{ name }}</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.small { color: #666; font-size: 0.85em; }
</style></head><body>
<h1>CHEF run <code>{{ name }}</code></h1>
<p class="small">run directory {{ run_dir }} &middot; episode store {{ data_dir }} &middot;
{{ n_episodes }} episodes, {{ n_transitions }} transitions &middot; generated {{ generated }}</p>
<h2>Success per stage and test triplet</h2>
<p class="small">Episode success = sparse stacking success at the final tick (docs/sim.md). Cells show
the rate, its Wilson 95 % interval and the number of episodes.</p>
{{ success_table }}
<img src="success.png" alt="success per stage and triplet">
<h2>Iterations</h2>
<p class="small">The policy each iteration chose (Execute's best, the previous iteration's best re-executed
on the same seeds, replaced by its fine-tuned child only if that is at least as good), the fine-tune
against the same config trained from scratch for the same updates, and the online learner's collect.</p>
{{ iterations_table }}
<h2>Learning curves</h2>
{% for img in curves %}<img src="{{ img }}" alt="{{ img }}">{% endfor %}
{% if not curves %}<p>No learner metrics found.</p>{% endif %}
<h2>Data volume per stage</h2>
<img src="data.png" alt="data volume">
{{ data_table }}
<h2>Best policy: {{ best_policy }}</h2>
{% if strip %}<p class="small">{{ strip_caption }}</p><img src="{{ strip }}" alt="episode strip">
{% if gif %}<img src="{{ gif }}" alt="episode gif">{% endif %}{% else %}<p>No episode of the best policy with images.</p>{% endif %}
<h2>Lineage</h2>
{{ lineage_table }}
{% if ablations %}<h2>Ablations</h2>{{ ablations }}{% endif %}
<h2>Stage timings</h2>
{{ timing_table }}
</body></html>
"""


def _table(header: List[str], rows: List[List[Any]]) -> str:
    h = ''.join(f'<th>{html.escape(str(x))}</th>' for x in header)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(x))}</td>' for x in r) + '</tr>' for r in rows)
    return f'<table><tr>{h}</tr>{body}</table>'


def _fmt(rate) -> str:
    if rate is None or not rate.trials:
        return '-'
    return f'{100 * rate.value:.0f}% [{100 * rate.low:.0f}, {100 * rate.high:.0f}] n={rate.trials}'


def success_plot(rows, path: Path, triplets=TEST_TRIPLET_NAMES) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = list(triplets) + ['mean']
    fig, ax = plt.subplots(figsize=(11, 4.2))
    n = max(1, len(rows))
    width = 0.8 / n
    x = np.arange(len(cols))
    for j, (label, table, _) in enumerate(rows):
        vals, lo, hi = [], [], []
        for c in cols:
            r = table.get(c)
            if r is None or not r.trials:
                vals.append(np.nan), lo.append(0), hi.append(0)
            else:
                vals.append(r.value), lo.append(r.value - r.low), hi.append(r.high - r.value)
        ax.bar(x + (j - (n - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=2, label=label)
    ax.set_xticks(x, [c.replace('rgb_test_', '') for c in cols])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate (Wilson 95 %)')
    ax.legend(fontsize=7, ncol=3, loc='upper center', bbox_to_anchor=(0.5, -0.08))   # below: no bar hidden
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def _read_csv(path: Path) -> Dict[str, np.ndarray]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out = {}
    for k in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r.get(k) or 'nan'))
            except ValueError:
                vals.append(np.nan)
        out[k] = np.array(vals)
    return out


def learning_curves(run_dir: Path, out_dir: Path) -> List[str]:
    """One PNG per group of metrics.csv files (collect learner, explore trials, finetune)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    groups: Dict[str, List[Path]] = {}
    for p in sorted(run_dir.glob('iter_*/**/metrics.csv')):
        rel = p.relative_to(run_dir)
        groups.setdefault(f'{rel.parts[0]}_{rel.parts[1]}', []).append(p)
    images = []
    for group, paths in groups.items():
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
        for p in paths:
            m = _read_csv(p)
            if 'step' not in m:
                continue
            label = p.parent.name
            # BC logs bc_loss, not actor_loss; arm_mse (the arm mean's squared error on the logged
            # actions) is logged by every offline learner, so BC and IQL trials share a panel
            for ax, keys in zip(axes, (('critic_loss',), ('actor_loss', 'bc_loss'), ('arm_mse',), ('q_mean',))):
                key = next((k for k in keys if k in m), None)
                if key is not None:
                    ax.plot(m['step'], m[key], label=f'{label} ({key})' if len(keys) > 1 else label, lw=1)
                    ax.set_title(' | '.join(keys))
                    ax.set_xlabel('update')
        axes[1].legend(fontsize=7)        # every offline learner logs an actor term
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.suptitle(group.replace('_', ' '))
        fig.tight_layout()
        name = f'curves_{group}.png'
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        images.append(name)
    return images


def data_volume(run, out_dir: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    counts: Dict[str, List[int]] = {}
    for r in run.episodes():
        st = r.metadata.get('stage') or 'untagged'
        it = r.metadata.get('iteration')
        key = f'it{it} {st}' if it is not None else st
        c = counts.setdefault(key, [0, 0, 0])
        c[0] += 1
        c[1] += int(r.steps or 0)
        c[2] += int(bool(r.metadata.get('complete')))
    keys = sorted(counts)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar(keys, [counts[k][1] for k in keys], color='#4a7fb0')
    ax.set_ylabel('transitions')
    ax.tick_params(axis='x', labelrotation=30)
    cum = np.cumsum([counts[k][1] for k in keys])
    ax2 = ax.twinx()
    ax2.plot(keys, cum, color='#c0504d', marker='o')
    ax2.set_ylabel('cumulative transitions (all data so far)')
    fig.tight_layout()
    fig.savefig(out_dir / 'data.png', dpi=100)
    plt.close(fig)
    rows = [[k, counts[k][0], counts[k][2], counts[k][1]] for k in keys]
    return _table(['iteration / stage', 'episodes', 'complete', 'transitions'], rows)


def episode_strip(run, policy_id: Optional[str], out_dir: Path):
    """Image strip + GIF of the best policy's highest-return episode (front-left camera)."""
    if not policy_id:
        return None, None, ''
    recs = [r for r in run.episodes() if (r.metadata.get('tags') or {}).get('candidate') == policy_id]
    if not recs:
        return None, None, ''
    rec = max(recs, key=lambda r: float((r.metadata.get('returns') or {}).get('staged', 0.0)))
    try:
        ep = run.dataset.load(rec)
    except Exception:  # noqa: BLE001 - a report should not die on one bad bag
        return None, None, ''
    key = next((k for k in ep.frames if k.endswith('/pixels')), None)
    if key is None:
        return None, None, ''
    frames = np.asarray(ep.frames[key])
    idx = np.linspace(0, len(frames) - 1, 9).astype(int)
    strip = np.concatenate([frames[i] for i in idx], axis=1)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    plt.imsave(out_dir / 'episode_strip.png', strip)
    gif = None
    try:
        from PIL import Image
        imgs = [Image.fromarray(np.asarray(frames[i])).resize((128, 128)) for i in range(0, len(frames), 8)]
        imgs[0].save(out_dir / 'episode.gif', save_all=True, append_images=imgs[1:], duration=200, loop=0)
        gif = 'episode.gif'
    except Exception:  # noqa: BLE001
        gif = None
    caption = (f'episode {rec.id[:12]} ({rec.metadata.get("triplet")}, seed {rec.metadata.get("seed")}, '
               f'success {rec.metadata.get("success")}, staged return '
               f'{float((rec.metadata.get("returns") or {}).get("staged", 0)):.1f}); {key}, ticks {idx.tolist()}')
    return 'episode_strip.png', gif, caption


def _overrides_cell(config: Dict[str, Any]) -> str:
    members = config.get('members')
    text = ' '.join(config.get('overrides', []))[:90]
    return f'ensemble of {len(members)}: {text}' if members else text


def build_report(run, out_dir: Optional[Path] = None) -> Path:
    import time

    from jinja2 import Template
    out_dir = Path(out_dir or run.run_dir / 'report')
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = stage_rows(run)
    success_plot(rows, out_dir / 'success.png')
    cols = list(TEST_TRIPLET_NAMES) + ['mean']
    success_table = _table(['stage / policy'] + [c.replace('rgb_test_', '') for c in cols[:-1]] + ['pooled'],
                           [[label] + [_fmt(t.get(c)) for c in cols] for label, t, _ in rows])
    curves = learning_curves(run.run_dir, out_dir)
    data_table = data_volume(run, out_dir)
    best = run.best_policy()
    strip, gif, caption = episode_strip(run, best, out_dir)
    lineage_rows = []
    for pid, p in run.state.policies().items():
        lineage_rows.append([pid, p.get('parent') or '-', p['stage'], p['iteration'], p['data']['episodes'],
                             p['data']['episodes_sha256'][:12], p['config'].get('learner_config', ''),
                             _overrides_cell(p['config']), p['sha256'][:12]])
    lineage_table = _table(['policy', 'parent', 'stage', 'iteration', 'episodes seen', 'data sha256',
                            'learner config', 'overrides', 'checkpoint sha256'], lineage_rows)
    abl_html = ''
    for name, rep in (run.state.data.get('ablations') or {}).items():
        rws = []
        for v in rep['variants']:
            m = v['success']['mean']
            rws.append([v['variant'], f'{100 * m["rate"]:.0f}% [{100 * m["low"]:.0f}, {100 * m["high"]:.0f}] '
                        f'n={m["trials"]}', f'{v["mean_staged_return"]:.1f}', v['episodes_trained'], v['updates']])
        abl_html += f'<h3>{html.escape(name)}</h3>' + _table(
            ['variant', 'success (pooled, Wilson 95 %)', 'mean staged return', 'episodes trained', 'updates'], rws)
    timing = []
    for i in run.state.iterations():
        for stage, st in run.state.data['iterations'][str(i)].items():
            timing.append([i, stage, st.get('status'), (st.get('artefacts') or {}).get('wall_s', '-')])
    from chef_loop.summary import iteration_outcomes, pct
    outcomes = iteration_outcomes(run)
    iterations_table = _table(
        ['iteration', 'chosen policy', 'its success', 'fine-tune (updates)', 'from scratch, same updates',
         'online collect'],
        [[o['iteration'], o['chosen'], pct(o['chosen_success']),
          f"{pct(o['finetune']['success'])} ({o['finetune']['updates']})" if 'finetune' in o else '-',
          pct(o['scratch']['success']) if 'scratch' in o else '-',
          pct(o['online_collect']['success']) if 'online_collect' in o else '-'] for o in outcomes])
    recs = run.episodes()
    page = Template(TEMPLATE).render(
        iterations_table=iterations_table,
        name=run.cfg.name, run_dir=run.run_dir, data_dir=run.data_dir, n_episodes=len(recs),
        n_transitions=sum(int(r.steps or 0) for r in recs), generated=time.strftime('%Y-%m-%d %H:%M'),
        success_table=success_table, curves=curves, data_table=data_table, best_policy=best or '-',
        strip=strip, gif=gif, strip_caption=caption, lineage_table=lineage_table, ablations=abl_html,
        timing_table=_table(['iteration', 'stage', 'status', 'wall s'], timing))
    (out_dir / 'index.html').write_text(page)
    summary = {label: {k: v.to_dict() for k, v in t.items()} for label, t, _ in rows}
    summary['iterations'] = outcomes    # chosen policy per iteration, fine-tune vs scratch
    (out_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    return out_dir / 'index.html'
