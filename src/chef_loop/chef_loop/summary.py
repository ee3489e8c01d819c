"""Success per stage and per test triplet of a CHEF run, as rows (for the terminal and the report)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from chef_loop.config import TEST_TRIPLET_NAMES
from chef_loop.stats import Rate, success_table


def stage_rows(run) -> List[Tuple[str, Dict[str, Rate], Dict[str, Any]]]:
    """[(label, {triplet|'mean': Rate}, info)] for every stage/policy that acted on the cells."""
    rows = []
    for i in run.state.iterations():
        groups: Dict[str, list] = {}
        for r in run.ended(iteration=i):
            stage = r.metadata.get('stage')
            tags = r.metadata.get('tags') or {}
            if stage == 'collect':
                label = f'it{i} collect: {tags.get("data_source", "?")}'
            elif stage in ('execute', 'finetune', 'finetune_scratch'):
                label = f'it{i} {stage}: {tags.get("candidate", "?")}'
            else:
                continue
            groups.setdefault(label, []).append(r)
        for label in sorted(groups, key=_order):
            recs = groups[label]
            table = success_table((r.metadata.get('triplet'), bool(r.metadata.get('success'))) for r in recs)
            rows.append((label, table, {'episodes': len(recs)}))
    return rows


def iteration_outcomes(run) -> List[Dict[str, Any]]:
    """Per finished iteration: the chosen policy and its pooled success where it was evaluated (its
    execute row, or its fine-tune row), the fine-tuned policy's and the from-scratch baseline's
    success at the same update count, and the online learner's collect success."""
    out = []
    for i in run.state.iterations():
        exe, ft = run.state.artefacts(i, 'execute'), run.state.artefacts(i, 'finetune')
        chosen = ft.get('best_policy') or exe.get('best_policy')
        if not chosen:
            continue
        evals = {ev['policy']: ev for ev in exe.get('evaluations', [])}
        if ft.get('evaluation'):
            evals[ft['evaluation']['policy']] = ft['evaluation']
        row: Dict[str, Any] = {'iteration': i, 'chosen': chosen,
                               'chosen_success': (evals.get(chosen) or {}).get('success', {}).get('mean'),
                               'candidates': {pid: ev['success']['mean'] for pid, ev in evals.items()},
                               'previous_best': exe.get('previous_best')}
        if ft.get('evaluation'):
            row['finetune'] = {'policy': ft['policy'], 'updates': ft.get('updates'),
                               'parent_updates': ft.get('parent_updates'),
                               'success': ft['evaluation']['success']['mean']}
        if ft.get('scratch'):
            row['scratch'] = {'policy': ft['scratch']['policy'], 'updates': ft.get('updates'),
                              'success': ft['scratch']['success']['mean']}
        online = (run.state.artefacts(i, 'collect') or {}).get('online_learner')
        if online:
            row['online_collect'] = {'episodes': online['episodes'], 'success': online['success']}
        out.append(row)
    return out


def _order(label: str):
    for n, key in enumerate(('collect', 'execute', 'finetune_scratch', 'finetune')):
        if f' {key}:' in label:
            return (label.split()[0], n, label)
    return (label.split()[0], 9, label)


def print_summary(run, triplets: Sequence[str] = TEST_TRIPLET_NAMES) -> None:
    from rich.console import Console
    from rich.table import Table
    rows = stage_rows(run)
    t = Table(title=f'CHEF run {run.cfg.name}: success per stage and test triplet '
                    '(Wilson 95 % interval, episodes)')
    t.add_column('stage / policy')
    for name in triplets:
        t.add_column(name.replace('rgb_test_', ''), justify='right')
    t.add_column('pooled', justify='right')
    for label, table, info in rows:
        cells = []
        for name in list(triplets) + ['mean']:
            r = table.get(name)
            cells.append(pct(r.to_dict()) if r is not None else '-')
        t.add_row(label, *cells)
    Console(width=max(150, Console().width)).print(t)
    for row in iteration_outcomes(run):
        r = row['chosen_success'] or {}
        line = (f'iteration {row["iteration"]}: chosen {row["chosen"]} '
                f'{pct(r)}' + (f' (previous best {row["previous_best"]} re-executed on the same seeds)'
                                if row['previous_best'] else ''))
        if 'finetune' in row:
            line += f'; fine-tune {pct(row["finetune"]["success"])}'
        if 'scratch' in row:
            line += f', from scratch at the same {row["scratch"]["updates"]} updates {pct(row["scratch"]["success"])}'
        if 'online_collect' in row:
            line += f'; online collect {pct(row["online_collect"]["success"])}'
        print(line)


def pct(r: Dict[str, Any]) -> str:
    """'40% [28-54] 20/50' from a Rate.to_dict(); '-' when nothing was measured."""
    if not r or not r.get('trials'):
        return '-'
    return f'{100 * r["rate"]:.0f}% [{100 * r["low"]:.0f}-{100 * r["high"]:.0f}] {r["successes"]}/{r["trials"]}'
