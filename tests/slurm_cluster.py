"""A real single-node SLURM cluster on localhost for tests: Debian's munged, slurmctld and slurmd, no systemd,
no cgroups, no accounting (see /work/shared/notes/slurm.md for what was measured).

Everything lives in a temporary folder (state, logs, PID files, a private munge key and socket, its own
ports), except the configuration: SLURM's commands read ``/etc/slurm/slurm.conf`` and Snakemake's job step
(snakemake-executor-plugin-slurm-jobstep) drops ``SLURM_CONF`` before it calls ``srun``, so the file must be
there. Whatever was at that path is put back when the cluster stops. The three daemons run in the foreground
as children of the test and are stopped by their PIDs, after every job left in the queue is cancelled.

The node claims at least ``MIN_CPUS`` CPUs and ``MIN_MEMORY_MB`` of memory whatever the machine has
(``SlurmdParameters=config_overrides``; nothing is enforced without cgroups), so that the requests of the
shipped profile, sized for full TIMIT, fit on a small test machine unchanged.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

SLURM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")
MIN_CPUS = 8
MIN_MEMORY_MB = 32000
START_TIMEOUT = 60  # seconds for the node to become idle
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """SLURM cannot start here; the message says why (tests skip with it)."""


def why_unavailable() -> Optional[str]:
    """Why a cluster cannot be started on this machine, or None if it can (after installing what is missing)."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "SLURM runs on Linux only"
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    if any(_running(daemon) for daemon in ("slurmctld", "slurmd")):
        return "a SLURM daemon already runs on this machine: the test will not reconfigure a cluster it did not start"
    missing = [c for c in DAEMONS + COMMANDS if not shutil.which(c)]
    if missing:
        installer = Path(__file__).resolve().parents[1] / "tools" / "install_system_deps.sh"
        result = subprocess.run([str(installer)], capture_output=True, text=True)
        missing = [c for c in DAEMONS + COMMANDS if not shutil.which(c)]
        if missing:
            return f"no {', '.join(missing)}, and {installer.name} could not install them: {result.stderr[-500:]}"
    return None


def _running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemTotal")


class SlurmCluster:
    """A one-node cluster: ``with SlurmCluster() as cluster: ...`` starts it and stops it, also on errors."""

    def __init__(self):
        self.root: Optional[Path] = None
        self.daemons: List[subprocess.Popen] = []
        self.wrote_conf = False
        self.saved_conf: Optional[bytes] = None  # what /etc/slurm/slurm.conf held before
        self.created_conf_dir = False
        self.node = socket.gethostname().split(".")[0]
        self.seconds_to_idle: Optional[float] = None

    def __enter__(self) -> "SlurmCluster":
        reason = why_unavailable()
        if reason:
            raise ClusterUnavailable(reason)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="asrkit-slurm-"))
        self.root.chmod(0o755)
        munge = pwd.getpwnam("munge")
        # munged insists on a private key and a socket folder that everyone can traverse
        munge_dir = self.root / "munge"
        munge_dir.mkdir(mode=0o711)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        for path in (munge_dir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        munge_socket = munge_dir / "munge.socket"
        for name in ("state", "spool", "log"):
            (self.root / name).mkdir()
        self._write_conf(munge_socket)
        self._start("munged", ["munged", "--foreground", f"--socket={munge_socket}", f"--key-file={key}",
                               f"--log-file={munge_dir / 'munged.log'}", f"--pid-file={munge_dir / 'munged.pid'}",
                               f"--seed-file={munge_dir / 'munged.seed'}"], user=munge.pw_uid, group=munge.pw_gid)
        self._wait(lambda: munge_socket.exists(), "munged to open its socket")
        self._start("slurmctld", ["slurmctld", "-D", "-f", str(SLURM_CONF)])
        self._start("slurmd", ["slurmd", "-D", "-f", str(SLURM_CONF)])
        self._wait(lambda: self.node_state() == "idle", f"node {self.node} to become idle")
        self.seconds_to_idle = time.monotonic() - started

    def _write_conf(self, munge_socket: Path) -> None:
        cpus = max(os.cpu_count() or 1, MIN_CPUS)
        memory = max(_total_memory_mb() - 1024, MIN_MEMORY_MB)
        conf = f"""\
# written by asrkit's tests/slurm_cluster.py for a test cluster in {self.root}; the earlier file is restored
ClusterName=asrkit-test
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue, which Snakemake polls for their state (no accounting here)
MinJobAge=600
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation={self.root / 'state'}
SlurmdSpoolDir={self.root / 'spool'}
SlurmctldPidFile={self.root / 'slurmctld.pid'}
SlurmdPidFile={self.root / 'slurmd.pid'}
SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}
SlurmdLogFile={self.root / 'log' / 'slurmd.log'}
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory}
PartitionName={PARTITION} Nodes=ALL Default=YES State=UP MaxTime=INFINITE
"""
        if SLURM_CONF.exists():
            self.saved_conf = SLURM_CONF.read_bytes()
        elif not SLURM_CONF.parent.exists():
            SLURM_CONF.parent.mkdir(parents=True)
            self.created_conf_dir = True
        self.wrote_conf = True
        SLURM_CONF.write_text(conf)

    def _start(self, name: str, command: List[str], **kwargs) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        with log:
            self.daemons.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True, **kwargs))

    def _wait(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not condition():
            ended = [d.args[0] for d in self.daemons if d.poll() is not None]
            if ended or time.monotonic() > deadline:
                raise RuntimeError(f"SLURM did not start: waited for {what}; "
                                   f"{'exited: ' + ', '.join(ended) if ended else 'timed out'}\n{self.logs()}")
            time.sleep(0.2)

    def node_state(self) -> str:
        result = subprocess.run(["sinfo", "-h", "-N", "-n", self.node, "-o", "%T"], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted((self.root / "log").glob("*")) if p.is_file())

    def show_job(self, job_id: str) -> dict:
        """``scontrol show job`` as a dict of its ``Key=Value`` fields."""
        out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def stop(self) -> None:
        """Cancel what is left in the queue, stop the daemons this cluster started, put the config back."""
        if any(d.poll() is None for d in self.daemons[1:]):
            subprocess.run(["scancel", "--partition", PARTITION], capture_output=True, timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and subprocess.run(
                    ["squeue", "-h", "-t", "running,completing"], capture_output=True, text=True).stdout.strip():
                time.sleep(0.5)
        for daemon in reversed(self.daemons):  # slurmd, slurmctld, munged
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=20)
        self.daemons = []
        if self.saved_conf is not None:
            SLURM_CONF.write_bytes(self.saved_conf)
        elif self.wrote_conf:
            SLURM_CONF.unlink(missing_ok=True)
            if self.created_conf_dir:
                SLURM_CONF.parent.rmdir()
        self.wrote_conf = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
