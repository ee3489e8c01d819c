"""`chef data`: list, inspect, verify and repair recorded episodes; rebuild the catalog.

Import-light: heavy modules (rosbags, mcap, numpy) load inside the subcommands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

DESCRIPTIONS = {'data': 'Recorded episodes: one rosbag2 (MCAP) bag per episode under '
                        '<data-dir>/episodes/<cell>/<id>/, indexed in <data-dir>/catalog.sqlite.'}
EPILOGS = {'data': """\
examples:
  chef data ls                              every complete episode, newest last
  chef data ls --all --where stage=collect  also aborted/recovered ones, only the collect stage
  chef data info <episode-id>               all metadata of one episode
  chef data verify --deep                   checksums, indexes, decode every message
  chef data repair                          recover crashed partial episodes and corrupt bags
  chef data rebuild-catalog --check         rebuild the catalog from the bags and compare
"""}


ACTIONS = ('ls', 'info', 'verify', 'repair', 'rebuild-catalog')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('action', choices=ACTIONS, help='ls: list episodes and partial ones; info: all metadata '
                   'of one episode; verify: checksums, indexes and counts (--deep: decode everything); '
                   'repair: recover crashed partial episodes and corrupt bags; rebuild-catalog: rebuild '
                   'catalog.sqlite from the bags alone')
    p.add_argument('episodes', nargs='*', help='episode ids (info: exactly one; verify: only these)')
    p.add_argument('--data-dir', default=os.environ.get('CHEF_DATA_DIR', 'data'),
                   help='data directory (default: $CHEF_DATA_DIR or ./data)')
    p.add_argument('--all', action='store_true', help='ls: include incomplete episodes (aborted, recovered...)')
    p.add_argument('--where', action='append', default=[], metavar='FIELD=VALUE',
                   help='ls: filter on a catalog/metadata field (repeatable), e.g. stage=collect')
    p.add_argument('--limit', type=int, default=0, help='ls: show only the last N rows')
    p.add_argument('--json', action='store_true', help='ls: one JSON object per episode')
    p.add_argument('--deep', action='store_true', help='verify: also read and decode every message')
    p.add_argument('--dry-run', action='store_true', help='repair: only say what would be repaired')
    p.add_argument('--skip-verify', action='store_true', help='repair: only partials, do not verify bags')
    p.add_argument('--check', action='store_true',
                   help='rebuild-catalog: compare a rebuilt catalog with the current one, change nothing')


def main(args) -> int:
    from chef_recorder.layout import DataLayout
    layout = DataLayout(args.data_dir)
    if not layout.root.is_dir():
        raise FileNotFoundError(f'no data directory {layout.root} (set --data-dir or CHEF_DATA_DIR)')
    if args.action == 'info' and len(args.episodes) != 1:
        raise ValueError('chef data info takes exactly one episode id')
    return {'ls': _ls, 'info': _info, 'verify': _verify, 'repair': _repair,
            'rebuild-catalog': _rebuild}[args.action](layout, args)


def _parse_where(items: List[str]) -> Dict[str, Any]:
    out = {}
    for item in items:
        if '=' not in item:
            raise ValueError(f'--where {item!r}: expected FIELD=VALUE')
        k, v = item.split('=', 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _fmt_bytes(n: float) -> str:
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if n < 1000 or unit == 'TB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1000
    return ''


def _ls(layout, args) -> int:
    from chef_recorder.catalog import Catalog
    from chef_recorder.integrity import partial_state
    with Catalog(layout) as cat:
        cat.sync(progress=True)
        filters = _parse_where(args.where)
        every = cat.rows(**filters)
    only_complete = not args.all and 'complete' not in filters
    rows = [r for r in every if r['complete']] if only_complete else every
    shown = rows[-args.limit:] if args.limit else rows
    if args.json:
        for r in shown:
            print(json.dumps({k: v for k, v in r.items() if k != 'metadata'} | {
                'metadata': json.loads(r['metadata'])}, sort_keys=True))
    else:
        head = ('episode', 'cell', 'src', 'stage', 'it', 'triplet', 'steps', 'miss', 'succ', 'status', 'rate',
                'drop', 'size')
        table = [head]
        for r in shown:
            m = json.loads(r['metadata'])
            table.append((r['id'][:20], r['cell'], r['source'] or '', r['stage'] or '',
                          '' if r['iteration'] is None else str(r['iteration']), r['triplet'] or '',
                          str(r['steps']), str(m.get('missing_ticks', 0)),
                          {None: '-', 1: 'yes', 0: 'no'}[r['success']],
                          r['status'] + ('' if r['complete'] else ' PARTIAL'),
                          'ok' if r['rate_ok'] else 'MISS', str(r['dropped_messages'] + m.get('incomplete_ticks', 0)),
                          _fmt_bytes(r['file_bytes'])))
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        for row in table:
            print('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        steps = sum(r['steps'] or 0 for r in rows)
        size = sum(r['file_bytes'] or 0 for r in rows)
        print(f'{len(rows)} episodes, {steps} transitions, {_fmt_bytes(size)}'
              + (' (complete only; --all for every episode)' if only_complete else ''))
        hidden = [r for r in every if not r['complete']] if only_complete else []
        if hidden:
            missing = sum(json.loads(r['metadata']).get('missing_ticks', 0) for r in hidden)
            ids = ', '.join(r['id'][:20] for r in hidden[:5]) + (', ...' if len(hidden) > 5 else '')
            print(f'{len(hidden)} PARTIAL episodes not shown ({missing} ticks missing: {ids}); --all lists them')
    partials = list(layout.iter_partials())
    for cell, d in partials:
        state = partial_state(d)
        hint = '' if state == 'recording' else '  -> chef data repair'
        print(f'partial: {layout.relative(d)}  [{state}]{hint}', file=sys.stderr if args.json else sys.stdout)
    return 0


def _info(layout, args) -> int:
    from chef_recorder.bagio import read_bag_metadata
    from chef_recorder.catalog import Catalog
    from chef_recorder.metadata import FIELDS
    with Catalog(layout) as cat:
        cat.sync()
        row = cat.get(args.episodes[0])
    bag = layout.root / row['path']
    meta = json.loads(row['metadata'])
    info = read_bag_metadata(bag)
    print(f'bag: {bag}')
    print(f'storage: {info.get("storage_identifier")} v{info.get("version")}, '
          f'{info.get("message_count")} messages, {info["duration"]["nanoseconds"] / 1e9:.2f} s, '
          f'{_fmt_bytes(row["file_bytes"])}')
    for k in FIELDS:
        if k in meta and k != 'topics':
            print(f'  {k:22s} {json.dumps(meta[k], sort_keys=True)}')
    print('  topics:')
    for t in info.get('topics_with_message_count') or []:
        print(f'    {t["message_count"]:6d}  {t["topic_metadata"]["name"]}  [{t["topic_metadata"]["type"]}]')
    return 0


def _progress(items, desc):
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='bag', disable=len(items) < 2)


def _verify(layout, args) -> int:
    from chef_recorder.integrity import partial_state, verify_bag
    bags = [p for _, p in layout.iter_bags()]
    if args.episodes:
        want = set(args.episodes)
        bags = [b for b in bags if b.name in want]
        missing = want - {b.name for b in bags}
        if missing:
            raise ValueError(f'no such episode(s): {sorted(missing)}')
    bad = 0
    for bag in _progress(bags, 'verifying'):
        problems = verify_bag(bag, deep=args.deep)
        if problems:
            bad += 1
            for p in problems:
                print(f'FAIL {layout.relative(bag)}: {p}')
    partial = [(c, d, partial_state(d)) for c, d in layout.iter_partials()]
    for _, d, state in partial:
        print(f'{"PART" if state == "recording" else "FAIL"} {layout.relative(d)}: partial episode [{state}]')
    broken = bad + sum(1 for *_, s in partial if s != 'recording')
    print(f'{len(bags)} bags checked{" (deep)" if args.deep else ""}: {len(bags) - bad} ok, {bad} failed; '
          f'{len(partial)} partial' + ('; run `chef data repair`' if broken else ''))
    return 1 if broken else 0


def _repair(layout, args) -> int:
    from chef_recorder.catalog import Catalog
    from chef_recorder.integrity import partial_state, repair_bag, repair_partial, verify_bag
    todo = [(c, d, partial_state(d)) for c, d in layout.iter_partials()]
    todo = [(c, d, s) for c, d, s in todo if s != 'recording']
    corrupt = []
    if not args.skip_verify:
        for _, bag in _progress(list(layout.iter_bags()), 'verifying'):
            problems = verify_bag(bag)
            if problems:
                corrupt.append((bag, problems))
    if args.dry_run:
        for _, d, state in todo:
            print(f'would repair partial {layout.relative(d)} [{state}]')
        for bag, problems in corrupt:
            print(f'would repair {layout.relative(bag)}: {problems[0]}')
        print(f'{len(todo)} partial, {len(corrupt)} corrupt')
        return 0
    failed = lost = 0
    produced = []
    for cell, d, state in _progress(todo, 'repairing partials'):
        try:
            out = repair_partial(layout, cell, d)
            produced += [out] if out else []
            lost += out is None
            print(f'{layout.relative(d)} [{state}] -> '
                  f'{layout.relative(out) if out else "nothing recoverable (original in .quarantine)"}')
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            failed += 1
            print(f'FAIL {layout.relative(d)}: {exc}')
    for bag, problems in _progress(corrupt, 'repairing bags'):
        try:
            out = repair_bag(layout, bag)
            produced += [out] if out else []
            lost += out is None
            print(f'{layout.relative(bag)} ({problems[0]}) -> '
                  f'{layout.relative(out) if out else "nothing recoverable (original in .quarantine)"}')
        except Exception as exc:  # noqa: BLE001
            failed += 1
            print(f'FAIL {layout.relative(bag)}: {exc}')
    with Catalog(layout) as cat:
        for out in produced:
            cat.add_bag(out)
        added, removed = cat.sync()
    added += len(produced)
    print(f'repaired {len(produced)} of {len(todo) + len(corrupt)}'
          + (f', {lost} with nothing recoverable' if lost else '') + (f', {failed} failed' if failed else '')
          + f'; catalog: +{added} -{removed}')
    return 1 if failed or lost else 0


def _rebuild(layout, args) -> int:
    from chef_recorder.catalog import Catalog
    if args.check:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            with Catalog(layout, Path(tmp) / 'rebuilt.sqlite') as fresh, Catalog(layout) as cur:
                fresh.rebuild(progress=True)
                a = {r['path']: r for r in cur.dump()}
                b = {r['path']: r for r in fresh.dump()}
        diff = sorted(set(a) ^ set(b)) + sorted(p for p in set(a) & set(b) if a[p] != b[p])
        for p in diff:
            print(f'differs: {p}')
        print(f'catalog {"matches" if not diff else "differs from"} the bags ({len(b)} episodes)')
        return 1 if diff else 0
    with Catalog(layout) as cat:
        n = cat.rebuild(progress=True)
    print(f'catalog rebuilt from the bags: {n} episodes')
    return 0
