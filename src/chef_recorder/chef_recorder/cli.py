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
  chef data info path/to/any_rosbag2_bag    storage, topics, types, offered QoS of any rosbag2 bag
  chef data verify --deep                   checksums, indexes, decode every message
  chef data verify path/to/bag_or_data_dir  the same for one bag or another data directory
  chef data repair                          recover crashed partial episodes and corrupt bags
  chef data rebuild-catalog --check         rebuild the catalog from the bags and compare
"""}


ACTIONS = ('ls', 'info', 'verify', 'repair', 'rebuild-catalog')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('action', choices=ACTIONS, help='ls: list episodes and partial ones; info: all metadata '
                   'of one episode; verify: checksums, indexes and counts (--deep: decode everything); '
                   'repair: recover crashed partial episodes and corrupt bags; rebuild-catalog: rebuild '
                   'catalog.sqlite from the bags alone')
    p.add_argument('episodes', nargs='*', metavar='EPISODE|PATH',
                   help='episode ids, bag directories or data directories (info: exactly one; verify: only '
                   'these)')
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


class DataCommandError(RuntimeError):
    """A bad input to `chef data`: printed as one line, exit status 2."""


def main(args) -> int:
    try:
        return _main(args)
    except DataCommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - every bad input is one line, never a traceback
        if os.environ.get('CHEF_DEBUG'):
            raise
        from chef_recorder.integrity import one_line
        raise DataCommandError(one_line(exc)) from None


def _main(args) -> int:
    if args.action == 'info' and len(args.episodes) != 1:
        raise DataCommandError('chef data info takes exactly one episode id, bag or data directory')
    if args.action == 'info':
        kind, target = _classify(args.episodes[0], must_exist=False)
        if kind == 'bag':
            return _info_bag(target)
        if kind == 'data':
            return _info_data(_data_layout(target))
    if args.action == 'verify' and args.episodes:
        targets = [_classify(e, must_exist=False) for e in args.episodes]
        if any(kind != 'id' for kind, _ in targets):
            return _verify_paths(targets, args)
    layout = _data_layout(args.data_dir)
    return {'ls': _ls, 'info': _info, 'verify': _verify, 'repair': _repair,
            'rebuild-catalog': _rebuild}[args.action](layout, args)


def _classify(arg: str, must_exist: bool = True):
    """('bag', path) | ('data', path) | ('id', episode id) for a command-line operand."""
    p = Path(arg).expanduser()
    if not p.exists():
        if os.sep in arg or must_exist:
            raise DataCommandError(f'{arg}: no such file or directory')
        return 'id', arg
    if p.is_file():
        raise DataCommandError(f'{p}: a file, not a bag (a rosbag2 bag is a directory with metadata.yaml '
                               f'and its storage files)')
    if (p / 'metadata.yaml').is_file():
        return 'bag', p
    if (p / 'episodes').is_dir() or (p / 'catalog.sqlite').is_file():
        return 'data', p
    if not any(p.iterdir()):
        raise DataCommandError(f'{p}: empty directory (neither a rosbag2 bag nor a CHEF data directory)')
    if any(p.glob('*.mcap')) or any(p.glob('*.db3')):
        raise DataCommandError(f'{p}: storage files without metadata.yaml (a partial or damaged bag; '
                               f'`chef data repair` recovers CHEF episodes)')
    raise DataCommandError(f'{p}: neither a rosbag2 bag (no metadata.yaml) nor a CHEF data directory '
                           f'(no episodes/)')


def _data_layout(path):
    """The DataLayout of a CHEF data directory; a bag, a file or a foreign directory is refused
    (nothing is written into it)."""
    from chef_recorder.layout import DataLayout
    p = Path(path).expanduser()
    if not p.exists():
        raise DataCommandError(f'no data directory {p} (set --data-dir or CHEF_DATA_DIR)')
    kind, _ = _classify(str(p))
    if kind == 'bag':
        raise DataCommandError(f'{p} is a rosbag2 bag, not a data directory: chef data info|verify {p}')
    return DataLayout(p)


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
    listed = {r['path'] for r in every} if not filters else None
    if listed is not None:
        left_out = [layout.relative(p) for _, p in layout.iter_bags() if layout.relative(p) not in listed]
        if left_out:
            print(f'{len(left_out)} bags not listed (unreadable or not CHEF episodes: {", ".join(left_out[:5])}'
                  f'{", ..." if len(left_out) > 5 else ""}); `chef data verify` says why',
                  file=sys.stderr if args.json else sys.stdout)
    partials = list(layout.iter_partials())
    for cell, d in partials:
        state = _partial_label(d)
        hint = '' if state == 'recording' else '  -> chef data repair' if state == 'crashed' or state == 'closed' \
            else ''
        print(f'partial: {layout.relative(d)}  [{state}]{hint}', file=sys.stderr if args.json else sys.stdout)
    return 0


def _info(layout, args) -> int:
    from chef_recorder.catalog import Catalog
    with Catalog(layout) as cat:
        cat.sync()
        row = cat.get(args.episodes[0])
    return _info_bag(layout.root / row['path'])


def _qos_text(profiles) -> str:
    """Short form of a topic's recorded offered QoS ('-' when none: `ros2 bag play` uses its default)."""
    from chef_recorder.bagio import parse_offered_qos
    try:
        qos = parse_offered_qos(profiles)
    except Exception:  # noqa: BLE001 - shown, not fatal
        return 'unparsable QoS'
    if not qos:
        return '-'
    q = qos[0]
    text = f'{q.reliability.name.lower()} {q.durability.name.lower()} {q.history.name.lower()} {q.depth}'
    if (q.deadline.sec, q.deadline.nsec) not in ((0, 0), (9223372036, 854775807)):
        text += f' deadline {q.deadline.sec + q.deadline.nsec / 1e9:g} s'
    return text + (f' (+{len(qos) - 1} more)' if len(qos) > 1 else '')


def _info_bag(bag: Path) -> int:
    """Any rosbag2 bag: storage, per topic its count, type, whether this install can decode it, and
    the offered QoS `ros2 bag play` will use; CHEF episode metadata if it is one. Exit 1 when the
    storage disagrees with metadata.yaml."""
    import warnings

    from chef_recorder.bagio import (
        BagError, SkippedTopicWarning, _open_storage, _storage_errors, declared_types, readable_connections,
        read_bag_metadata, storage_files,
    )
    from chef_recorder.metadata import FIELDS, PREFIX, from_custom_data
    info = read_bag_metadata(bag)
    files = storage_files(bag, info)
    stored: Dict[str, int] = {}
    skipped: Dict[str, str] = {}
    for path in files:
        try:
            with _open_storage(path) as reader, warnings.catch_warnings():
                warnings.simplefilter('ignore', SkippedTopicWarning)
                _, _, missed = readable_connections(reader, bag, None, declared_types(info))
                skipped.update(missed)
                for c in reader.connections:
                    stored[c.topic] = stored.get(c.topic, 0) + c.msgcount
        except _storage_errors() as exc:
            raise BagError(f'{path}: unreadable ({type(exc).__name__}: {exc})') from None
    duration = ((info.get('duration') or {}).get('nanoseconds') or 0) / 1e9
    print(f'bag: {bag}')
    print(f'storage: {info.get("storage_identifier")} v{info.get("version")}, {len(files)} file(s), '
          f'{info.get("message_count")} messages, {duration:.2f} s, distro {info.get("ros_distro") or "?"}, '
          f'{_fmt_bytes(sum(f.stat().st_size for f in files))}')
    custom = info.get('custom_data') or {}
    if isinstance(custom, dict) and any(str(k).startswith(PREFIX) for k in custom):
        meta = from_custom_data(custom)
        for k in FIELDS:
            if k in meta and k != 'topics':
                print(f'  {k:22s} {json.dumps(meta[k], sort_keys=True)}')
    print('  topics:                (messages, name, type, offered QoS)')
    lying = []
    for t in info.get('topics_with_message_count') or []:
        tm = t.get('topic_metadata') or {}
        name, n = tm.get('name'), t.get('message_count')
        flag = f'  SKIPPED: {skipped[name]}' if name in skipped else ''
        print(f'    {n!s:>6}  {name}  [{tm.get("type")}]  {_qos_text(tm.get("offered_qos_profiles"))}{flag}')
        if stored.get(name, 0) != n:
            lying.append(f'{name}: metadata.yaml says {n}, the storage holds {stored.get(name, 0)}')
    for line in lying:
        print(f'MISMATCH {line}')
    return 1 if lying else 0


def _info_data(layout) -> int:
    from chef_recorder.integrity import partial_state
    bags = [p for _, p in layout.iter_bags()]
    partial = [partial_state(d) for _, d in layout.iter_partials()]
    size = sum(f.stat().st_size for b in bags for f in b.iterdir() if f.is_file())
    print(f'data directory {layout.root}: {len(bags)} bags, {_fmt_bytes(size)}, {len(partial)} partial '
          f'({partial.count("crashed")} crashed); `chef data ls --data-dir {layout.root}` lists the episodes')
    return 0


def _progress(items, desc):
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='bag', disable=len(items) < 2)


def _verify(layout, args) -> int:
    bags = [p for _, p in layout.iter_bags()]
    if args.episodes:
        want = set(args.episodes)
        bags = [b for b in bags if b.name in want]
        missing = want - {b.name for b in bags}
        if missing:
            raise DataCommandError(f'no such episode(s) in {layout.root}: {sorted(missing)}')
    bad = _verify_bags(bags, args.deep, layout.relative, episode=True)
    partial = [] if args.episodes else [(c, d, _partial_label(d)) for c, d in layout.iter_partials()]
    for _, d, state in partial:
        print(f'{"PART" if state == "recording" else "FAIL"} {layout.relative(d)}: partial episode [{state}]')
    broken = bad + sum(1 for *_, s in partial if s != 'recording')
    print(f'{len(bags)} bags checked{" (deep)" if args.deep else ""}: {len(bags) - bad} ok, {bad} failed; '
          f'{len(partial)} partial' + ('; run `chef data repair`' if broken else ''))
    return 1 if broken else 0


def _partial_label(d: Path) -> str:
    """recording | closed | crashed, or what makes a directory under .partial/ no recorder's partial."""
    from chef_recorder.integrity import partial_state, recognised_partial
    why = recognised_partial(d)
    return f'not a recorder\'s partial: {why}; left alone by repair' if why else partial_state(d)


def _verify_bags(bags, deep: bool, name=str, episode: bool = False) -> int:
    """Verify each bag, one line per failing bag (and per skipped topic); returns how many failed.
    A bag that fails never stops the others."""
    from chef_recorder.integrity import verify_bag
    bad = 0
    for bag in _progress(bags, 'verifying'):
        notes: List[str] = []
        problems = verify_bag(bag, deep=deep, notes=notes, episode=episode)
        prefix = f'{bag}: '
        for n in notes:
            print(f'NOTE {name(bag)}: {n[len(prefix):] if n.startswith(prefix) else n}')
        if problems:
            bad += 1
            print(f'FAIL {name(bag)}: ' + '; '.join(p[len(prefix):] if p.startswith(prefix) else p
                                                   for p in problems))
    return bad


def _verify_paths(targets, args) -> int:
    """`chef data verify <bag|data dir|id> ...`: any rosbag2 bag on its own, or every bag of a data
    directory (ids refer to --data-dir); one summary line at the end."""
    bags, episodes, partial = [], [], 0
    for kind, target in targets:
        if kind == 'bag':
            bags.append(Path(target))
        elif kind == 'data':
            lay = _data_layout(target)
            episodes += [p for _, p in lay.iter_bags()]
            for _, d in lay.iter_partials():
                if _partial_label(d) != 'recording':
                    partial += 1
                    print(f'FAIL {d}: partial episode [{_partial_label(d)}]')
        else:
            lay = _data_layout(args.data_dir)
            found = [p for _, p in lay.iter_bags() if p.name == target]
            if not found:
                raise DataCommandError(f'no episode {target!r} in {lay.root}')
            episodes += found
    bad = _verify_bags(bags, args.deep) + _verify_bags(episodes, args.deep, episode=True)
    n = len(bags) + len(episodes)
    print(f'{n} bags checked{" (deep)" if args.deep else ""}: {n - bad} ok, {bad} failed'
          + (f'; {partial} crashed partial' if partial else ''))
    return 1 if bad or partial else 0


def _repair(layout, args) -> int:
    """Repair what is recognisably CHEF's (crashed partials, corrupt episodes); leave everything else
    untouched and say so; count as repaired only a result that verifies and holds a recorded tick."""
    from chef_recorder.integrity import (
        partial_state, recognised_episode, recognised_partial, repair_bag, repair_partial, verify_bag,
    )
    todo, corrupt, alien = [], [], []
    for c, d in layout.iter_partials():
        why = recognised_partial(d)
        if why:
            alien.append((d, why))
        elif partial_state(d) != 'recording':
            todo.append((c, d, partial_state(d)))
    if not args.skip_verify:
        for _, bag in _progress(list(layout.iter_bags()), 'verifying'):
            problems = verify_bag(bag, episode=True)
            if not problems:
                continue
            why = recognised_episode(bag)
            if why:
                alien.append((bag, why))
            else:
                corrupt.append((bag, problems))
    for d, why in alien:
        print(f'SKIP {layout.relative(d)}: not a CHEF episode ({why}); left untouched')
    if args.dry_run:
        for _, d, state in todo:
            print(f'would repair partial {layout.relative(d)} [{state}]')
        for bag, problems in corrupt:
            print(f'would repair {layout.relative(bag)}: {problems[0]}')
        print(f'{len(todo)} partial, {len(corrupt)} corrupt, {len(alien)} not CHEF episodes (left untouched)')
        return 0
    results = [_repair_one(layout, lambda c=c, d=d: repair_partial(layout, c, d), d, f' [{state}]')
               for c, d, state in _progress(todo, 'repairing partials')]
    results += [_repair_one(layout, lambda b=bag: repair_bag(layout, b), bag, f' ({problems[0]})')
                for bag, problems in _progress(corrupt, 'repairing bags')]
    produced = [out for status, out in results if out is not None]
    repaired = sum(1 for status, _ in results if status == 'repaired')
    lost = sum(1 for status, _ in results if status == 'lost')
    failed = sum(1 for status, _ in results if status == 'failed')
    added = removed = 0
    try:
        from chef_recorder.catalog import Catalog
        with Catalog(layout) as cat:
            for out in produced:
                try:
                    cat.add_bag(out)
                except Exception:  # noqa: BLE001 - sync below reports what it cannot read
                    pass
            added, removed = cat.sync()
        added += len(produced)
    except Exception as exc:  # noqa: BLE001 - the summary below still comes
        failed += 1
        print(f'FAIL catalog: {exc}')
    print(f'repaired {repaired} of {len(todo) + len(corrupt)}'
          + (f', {lost} with nothing recoverable' if lost else '') + (f', {failed} failed' if failed else '')
          + (f', {len(alien)} not CHEF episodes left untouched' if alien else '')
          + f'; catalog: +{added} -{removed}')
    return 1 if failed or lost or alien else 0


def _repair_one(layout, fn, what: Path, detail: str):
    """('repaired' | 'lost' | 'failed', published bag or None) for one repair, printed as one line.
    'repaired' only when the result verifies and holds at least one recorded tick."""
    from chef_recorder.bagio import read_bag_metadata
    from chef_recorder.integrity import one_line, verify_bag
    from chef_recorder.metadata import from_custom_data
    rel = _rel(layout, what)
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - report and go on with the others
        print(f'FAIL {rel}: {one_line(exc)}')
        return 'failed', None
    if out is None:
        print(f'{rel}{detail} -> nothing recoverable (original in .quarantine)')
        return 'lost', None
    problems = verify_bag(out)
    try:
        ticks = int(from_custom_data(read_bag_metadata(out).get('custom_data')).get('steps_recorded') or 0)
    except Exception:  # noqa: BLE001
        ticks = 0
    if problems or ticks <= 0:
        why = problems[0] if problems else 'no recorded transition'
        print(f'{rel}{detail} -> {_rel(layout, out)}: nothing trainable recovered ({why}; original in .quarantine)')
        return 'lost', out
    print(f'{rel}{detail} -> {_rel(layout, out)}')
    return 'repaired', out


def _rel(layout, path: Path) -> str:
    try:
        return layout.relative(path)
    except ValueError:
        return str(path)


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
    left = sum(1 for _ in layout.iter_bags()) - n
    print(f'catalog rebuilt from the bags: {n} episodes'
          + (f'; {left} bags left out (unreadable or not CHEF episodes: `chef data verify`)' if left else ''))
    return 0
