"""chef_loop.workers.process_map: the one fan-out of the loop and the benches (FQE, evaluation,
bench trainings): results in job order, a job's error re-raised, a dead worker an error - not a hang."""
import operator
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from chef_loop.workers import process_map


def test_results_come_back_in_job_order_from_separate_processes():
    jobs = [(i, 10 * i) for i in range(5)]
    assert process_map(operator.add, jobs, workers=2) == [11 * i for i in range(5)]
    pids = set(process_map(os.getpid, [()] * 3, workers=2))
    assert os.getpid() not in pids and len(pids) == 3        # one fresh process per job


def test_one_worker_runs_in_this_process():
    assert process_map(os.getpid, [(), ()], workers=1) == [os.getpid()] * 2


def test_a_failing_job_raises_its_error():
    with pytest.raises(ValueError):
        process_map(int, [('1',), ('not a number',)], workers=2)


@pytest.mark.timeout(60)
def test_a_dead_worker_raises_instead_of_hanging():
    with pytest.raises(BrokenProcessPool):
        process_map(os._exit, [(3,), (4,)], workers=2)
