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
            cells.append('-' if r is None or not r.trials else
                         f'{100 * r.value:.0f}% [{100 * r.low:.0f}-{100 * r.high:.0f}] {r.successes}/{r.trials}')
        t.add_row(label, *cells)
    Console(width=max(150, Console().width)).print(t)
