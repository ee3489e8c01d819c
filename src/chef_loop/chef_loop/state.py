"""Run state and lineage of a CHEF run (runs/<name>/state.json), written atomically.

* stage status per iteration: pending -> running -> done, with the stage's artefacts (paths,
  metrics, success tables). `chef loop` skips done stages after a crash and re-enters a running
  one; stages themselves count what the episode store already holds, so nothing is lost or doubled.
* lineage: for every policy, the config and parent that produced it and the exact data it saw
  (episode ids in runs/<name>/lineage/<policy>.episodes, their count and sha256).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

SCHEMA = 1


def atomic_write_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f'.tmp{os.getpid()}')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunState:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / 'state.json'
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
        else:
            self.data = {'schema': SCHEMA, 'created_unix': time.time(), 'iterations': {}, 'policies': {}}

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    # --- stages -----------------------------------------------------------------------------------
    def stage(self, iteration: int, name: str) -> Dict[str, Any]:
        it = self.data['iterations'].setdefault(str(iteration), {})
        return it.setdefault(name, {'status': 'pending'})

    def is_done(self, iteration: int, name: str) -> bool:
        return self.stage(iteration, name).get('status') == 'done'

    def mark_running(self, iteration: int, name: str) -> None:
        st = self.stage(iteration, name)
        if st.get('status') == 'running':
            st['resumed'] = st.get('resumed', 0) + 1
        st['status'] = 'running'
        st.setdefault('started_unix', time.time())
        self.save()

    def mark_done(self, iteration: int, name: str, artefacts: Dict[str, Any]) -> None:
        st = self.stage(iteration, name)
        st.update(status='done', ended_unix=time.time(), artefacts=artefacts)
        self.save()

    def artefacts(self, iteration: int, name: str) -> Dict[str, Any]:
        return self.stage(iteration, name).get('artefacts', {})

    def iterations(self) -> List[int]:
        return sorted(int(k) for k in self.data['iterations'])

    # --- lineage ----------------------------------------------------------------------------------
    def add_policy(self, policy_id: str, *, checkpoint: str, sha256: str, parent: Optional[str],
                   config: Dict[str, Any], episodes: Iterable[str], stage: str, iteration: int,
                   metrics: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        ids = sorted(set(episodes))
        lineage_dir = self.run_dir / 'lineage'
        lineage_dir.mkdir(parents=True, exist_ok=True)
        (lineage_dir / f'{policy_id}.episodes').write_text('\n'.join(ids) + ('\n' if ids else ''))
        rec = {'policy_id': policy_id, 'checkpoint': str(checkpoint), 'sha256': sha256, 'parent': parent,
               'config': config, 'stage': stage, 'iteration': iteration,
               'data': {'episodes': len(ids), 'episodes_sha256': hashlib.sha256('\n'.join(ids).encode()).hexdigest(),
                        'list': str(lineage_dir / f'{policy_id}.episodes')},
               'metrics': metrics or {}, 'created_unix': time.time()}
        self.data['policies'][policy_id] = rec
        self.save()
        return rec

    def policy(self, policy_id: str) -> Dict[str, Any]:
        return self.data['policies'][policy_id]

    def policies(self) -> Dict[str, Dict[str, Any]]:
        return self.data['policies']

    def ancestry(self, policy_id: str) -> List[str]:
        chain, cur = [], policy_id
        while cur is not None and cur in self.data['policies'] and cur not in chain:
            chain.append(cur)
            cur = self.data['policies'][cur].get('parent')
        return chain
