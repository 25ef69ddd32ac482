"""Running commands as process groups of their own, and killing such a group as a whole (as the OOM killer or a
lost machine would): the fault tests' and the multi-process training tests' way of running real processes."""

import os
import signal
import subprocess
import sys
import time
from typing import List

import psutil


def run_group(command: List[str], timeout: float) -> subprocess.CompletedProcess:
    """Run to the end in a session of its own; on timeout kill the whole group (no stray jobs survive)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise
    except BaseException:
        kill_group(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def group_members(pgid: int) -> List[psutil.Process]:
    """Every live process of a process group, and the descendants of its leader wherever they are."""
    members = {}
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members[process.pid] = process
        except (ProcessLookupError, psutil.Error):
            pass
    try:
        members.update((p.pid, p) for p in psutil.Process(pgid).children(recursive=True))
    except psutil.Error:
        pass
    return list(members.values())


def alive(processes: List[psutil.Process]) -> List[psutil.Process]:
    """Those still running: killed processes that nobody has reaped yet (zombies) are dead."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.Error:
            pass
    return running


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (and any descendant that left it); return when all are gone."""
    members = group_members(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for member in members:
        try:
            member.kill()
        except psutil.Error:
            pass
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while alive(members) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(members), f"processes survived SIGKILL: {[p.pid for p in alive(members)]}"


def file_size_limited(module: str, limit: int) -> List[str]:
    """The command that runs ``python -m <module>`` (its arguments follow) with a file size limit of ``limit``
    bytes: writes past it fail with EFBIG, as on a full disk (root ignores permissions, so this is how a test can
    make a write fail)."""
    return [sys.executable, "-c",
            f"import resource, runpy, signal, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            f"signal.signal(signal.SIGXFSZ, signal.SIG_IGN); sys.argv[0] = {module!r}; "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
