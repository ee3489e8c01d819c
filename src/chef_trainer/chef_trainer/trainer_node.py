"""Trainer node: the learner half of CHEF's actor/learner split.

Actors are the running cells: their policy nodes act, the recorder writes every episode to the data
directory (one bag per episode, published atomically at episode end). This node

  1. learns of new episodes from the cells' `episode/events` ('end' triggers a catalog poll a
     moment later, since the recorder publishes the bag just after the event) and from a periodic
     catalog poll (catches anything missed, e.g. while this node was down);
  2. feeds them to its batch source (chef_trainer.feed.DataFeed): every recorded episode plus, with
     `online.live_fraction` > 0, a live replay of the episodes recorded while it runs;
  3. runs the learner of its config (crr / bc / mpo; chef_trainer.offline.LearningRun) on a
     background thread, so ROS callbacks never wait for a gradient step;
  4. every `publish_every` updates writes a checkpoint (networks + optimisers + step + RNG) and
     announces {path, sha256, step, algorithm} on the latched `trainer/checkpoint` topic of every
     cell (`/cell<i>/trainer/checkpoint`, what the policy nodes subscribe to and hot-reload) and of
     its own namespace.

A killed trainer restarts from its run directory's newest checkpoint (`resume`), so the update
count continues where the last checkpoint left it.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from rclpy.node import Node
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.params import declare_params
from chef_contract.payloads import CheckpointAnnouncement
from chef_contract.ros import create_contract_publisher, create_contract_subscription, spin_node
from chef_trainer.config import parse_filters, resolve_config_path


@dataclass
class Params:
    config: str = field_('', help='learner config: a YAML path or the name of one in config/learners '
                                  "(e.g. 'mpo_sacx_state'); empty = the built-in defaults")
    overrides: str = field_('', help="config overrides 'a.b=value;c=value' (YAML values)")
    data_dir: str = field_('data', help='recorder data directory (catalog + bags)')
    run_dir: str = field_('runs/trainer', help='checkpoints, latest.json, metrics.csv, summary.json')
    cells: int = field_(1, min=0, max=64, help='cells whose episode/events are watched (cell0..)')
    filters: str = field_('', help="catalog filters 'key=value,key=value' (e.g. source=sim)")
    publish_every: int = field_(500, min=1, help='checkpoint + announce every N updates')
    max_updates: int = field_(0, min=0, help='stop learning after this update count (0 = never)')
    min_transitions: int = field_(1000, min=1, help='transitions needed before the first update')
    poll_s: float = field_(5.0, min=0.1, help='catalog poll period (s)')
    resume: bool = field_(True, help='continue from run_dir/latest.json if present')
    init_checkpoint: str = field_('', help='fine-tune: start a fresh run from these weights')
    torch_threads: int = field_(0, min=0, max=256, help='torch intra-op threads (0 = torch default)')
    device: str = field_('', help="override the config's device ('cpu', 'cuda', ...)")
    publish_initial: bool = field_(True, help='a fresh run announces its initial weights (step 0) at '
                                              'once, so cells waiting for a checkpoint start acting')


class TrainerNode(Node):
    def __init__(self, **kwargs):
        super().__init__('trainer', **kwargs)
        self.p = declare_params(self, Params)
        import torch
        if self.p.torch_threads:
            torch.set_num_threads(self.p.torch_threads)
        from chef_trainer.config import load_learner_config
        from chef_trainer.feed import DataFeed
        from chef_trainer.offline import LearningRun
        overrides = [s for s in (x.strip() for x in self.p.overrides.split(';')) if s]
        self.cfg = load_learner_config(resolve_config_path(self.p.config), overrides)
        lcfg = self.cfg.learner
        net = lcfg.network
        self.feed = DataFeed(
            self.p.data_dir, tuple(net.input_keys) + tuple(net.image_keys), lcfg.n_step, lcfg.discount,
            live_fraction=self.cfg.online.live_fraction, live_capacity=self.cfg.online.replay_capacity,
            filters=parse_filters(self.p.filters),
            image_size=net.image_size if net.image_keys else None)
        self.run = LearningRun(lcfg, self.p.run_dir, self.feed,
                               init_checkpoint=self.p.init_checkpoint or None, resume=self.p.resume,
                               device=self.p.device or None)
        self.feed_lock = threading.Lock()
        # one learner serves every cell: announce on each cell's trainer/checkpoint (the policy node
        # subscribes cell-relative) and on the node's own namespace
        self.pubs = [create_contract_publisher(self, T.CHECKPOINT_ANNOUNCE)] + [
            create_contract_publisher(self, T.CHECKPOINT_ANNOUNCE, remap=f'/cell{i}/{T.CHECKPOINT_ANNOUNCE}')
            for i in range(self.p.cells)]
        self.subs = [create_contract_subscription(self, T.EPISODE_EVENTS, self._on_event,
                                                  remap=f'/cell{i}/{T.EPISODE_EVENTS}')
                     for i in range(self.p.cells)]
        self._poll_soon = threading.Event()
        self.create_timer(self.p.poll_s, self._poll)
        self.create_timer(0.5, self._poll_if_asked)
        self._stop = threading.Event()
        self._error: str = ''
        self.published_step = -1
        if self.run.last_checkpoint is not None:        # re-announce what we resumed from
            self._announce(self.run.last_checkpoint)
        elif self.p.publish_initial:                     # Collect from scratch: actors need weights
            self._announce(self.run.checkpoint())
        self.get_logger().info(
            f'{lcfg.algorithm} learner, {self.run.started_from}, step {self.run.steps}; '
            f'{self.feed.episodes} episodes / {len(self.feed)} transitions in {self.p.data_dir}')
        self.thread = threading.Thread(target=self._learn, name='learner', daemon=True)
        self.thread.start()

    # --- data ---------------------------------------------------------------------------------------
    def _on_event(self, msg: String) -> None:
        try:
            ev = EpisodeEvent.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().warning(f'ignoring malformed episode event: {exc}')
            return
        if ev.event in ('end', 'abort'):
            self._poll_soon.set()

    def _poll_if_asked(self) -> None:
        if self._poll_soon.is_set():
            self._poll_soon.clear()
            self._poll()

    def _poll(self) -> None:
        try:
            with self.feed_lock, self.run.lock:       # the learner thread samples under run.lock
                n = self.feed.poll()
        except Exception as exc:  # noqa: BLE001 - a bad bag must not stop learning
            self.get_logger().error(f'catalog poll failed: {type(exc).__name__}: {exc}')
            return
        if n:
            self.get_logger().info(f'+{n} episodes: {self.feed.episodes} episodes, {len(self.feed)} '
                                   f'transitions, {self.feed.live_episodes} live')

    # --- learning -----------------------------------------------------------------------------------
    def _learn(self) -> None:
        cfg = self.run.cfg
        try:
            while not self._stop.is_set():
                if self.p.max_updates and self.run.steps >= self.p.max_updates:
                    break
                if len(self.feed) < self.p.min_transitions:
                    self._stop.wait(0.2)
                    continue
                with self.run.lock:
                    batch = self.feed.sample(cfg.batch_size, self.run.rng)
                self.run.update(batch)
                if self.run.steps % self.p.publish_every == 0:
                    self._announce(self.run.checkpoint())
            if self.run.steps != self.published_step and self.run.steps > 0:
                self._announce(self.run.checkpoint())
        except Exception as exc:  # noqa: BLE001 - report, keep the node alive for inspection
            import traceback
            traceback.print_exc()
            self._error = f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'learner stopped: {self._error}')

    def _announce(self, info: Dict[str, Any]) -> None:
        msg = String(data=CheckpointAnnouncement(
            path=str(info['path']), sha256=str(info['sha256']), step=int(info['step']),
            algorithm=self.run.cfg.algorithm, run_dir=str(Path(self.p.run_dir).resolve()),
            stamp_unix=time.time()).to_json())
        if not self.context.ok():             # shutting down: the checkpoint is saved, nobody listens
            return
        for pub in self.pubs:
            try:
                pub.publish(msg)
            except Exception:  # noqa: BLE001 - the context may close between the check and here
                if self.context.ok():
                    raise
                return
        self.published_step = int(info['step'])
        self.get_logger().info(f'checkpoint step {info["step"]} sha256 {info["sha256"][:12]}')

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=60.0)
        if self.run.steps > 0 and not self._error:
            self.run.finish(save=False)
        self.run.close()


NODE_PARAMS = {'trainer': Params}


def main(args=None):
    sys.exit(spin_node(TrainerNode, args=args))


if __name__ == '__main__':
    main()
