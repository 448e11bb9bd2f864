"""The harness that starts and kills servers: a kill reaches every process, and nothing outlives a run."""

import os
import subprocess
import sys

import psutil
import pytest

from harness.servers import kill_tree, leaves_no_process

# A parent that starts a child in a session and process group of its own, as BentoML starts its workers,
# prints the child's pid, then waits.
PARENT_OF_A_SESSION_LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def start_parent() -> tuple[subprocess.Popen, psutil.Process]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT_OF_A_SESSION_LEADER], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    assert child.is_running() and child.ppid() == parent.pid
    assert os.getpgid(child.pid) == child.pid != os.getpgid(parent.pid)  # out of reach of a group kill
    return parent, child


def test_kill_tree_kills_a_child_in_a_session_of_its_own():
    parent, child = start_parent()
    kill_tree(parent.pid)
    assert not psutil.pid_exists(parent.pid)  # killed and reaped
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE  # a zombie until its new parent reaps


def test_a_process_that_outlives_its_parent_fails_the_run_by_name_and_is_killed():
    with pytest.raises(RuntimeError, match=r"outlived the run.*time\.sleep\(120\)") as failed, leaves_no_process():
        parent, child = start_parent()
        parent.kill()  # the parent alone, as a group kill of BentoML's server did: the child lives on
        parent.wait(timeout=10)
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    assert str(child.pid) in str(failed.value)
    assert not child.is_running()


def test_a_run_whose_processes_all_ended_passes():
    with leaves_no_process():
        parent, _ = start_parent()
        kill_tree(parent.pid)
