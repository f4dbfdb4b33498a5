"""A real one-node SLURM cluster with accounting, for the tests: Debian's Slurm 22.05, slurmdbd on a
private MariaDB, three partitions (default, preemptible ``low``, high-priority ``high``) and two
fake GPUs.

Every file lives in one state folder; the daemons run in the foreground as our own child
processes on free ports, so two clusters never collide and ``stop`` ends exactly the processes
``start`` began (by pid). Clients reach the cluster through ``SLURM_CONF`` (see ``env``).
Facts behind the settings: the slurm.conf(5), gres.conf(5) and slurmdbd.conf(5) manual pages
(slurm.schedmd.com) and the comments below.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server")
DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd")
CLUSTER = "aloeci"
ACCOUNT = "aloe"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started on this machine (not root, no packages, a daemon failed)."""


def install_packages() -> None:
    """apt-get the Slurm, munge and MariaDB packages when a daemon binary is missing (needs root)."""
    if all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterUnavailable("Slurm packages are missing and apt-get cannot run here (not root / no apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    for args in (["apt-get", "update", "-qq"], install):
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(args[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class LocalSlurm:
    """``start()`` it, point clients at ``env``, ``stop()`` it. Not reentrant."""

    def __init__(self, root: str | os.PathLike, cpus: int | None = None, mem_mb: int | None = None):
        self.root = Path(root).absolute()
        self.cpus = cpus or os.cpu_count() or 1
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
        self.mem_mb = mem_mb or int(0.8 * avail)
        self.conf = self.root / "etc" / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> "LocalSlurm":
        if os.geteuid() != 0:
            raise ClusterUnavailable("starting slurmd, slurmctld and mariadbd needs root")
        install_packages()
        try:
            self._start_munge()
            self._start_mariadb(timeout_s)
            self._write_slurm_conf()
            self._start("slurmdbd", [_sbin("slurmdbd"), "-D"], "slurmdbd.log")
            self._wait_port(self.dbd_port, "slurmdbd", timeout_s)
            self._register_accounts()
            self._start("slurmctld", [_sbin("slurmctld"), "-D", "-i"], "slurmctld.log")
            self._start("slurmd", [_sbin("slurmd"), "-D", "-N", "localhost"], "slurmd.log")
            self._wait_idle(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- clients ---------------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run a Slurm client command against this cluster; its stdout."""
        done = subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def sacct(self, *job_ids: str, fields: str = "JobID,JobName,Partition,State,Timelimit,AllocTRES,Elapsed",
              duplicates: bool = False) -> list[dict[str, str]]:
        """Allocation rows (no steps) from sacct: every job of this cluster, or the given ids."""
        args = ["sacct", "-X", "-n", "-P", "-a", f"--format={fields}", "-S", "2000-01-01"]
        if duplicates:
            args.append("--duplicates")
        if job_ids:
            args.append("--jobs=" + ",".join(job_ids))
        names = fields.split(",")
        return [dict(zip(names, line.split("|"))) for line in self.run(*args).splitlines() if line.strip()]

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"== {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    # ---- daemons ---------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], log: str, **kwargs) -> subprocess.Popen:
        (self.root / "log").mkdir(parents=True, exist_ok=True)
        with open(self.root / "log" / log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **self.env}, start_new_session=True, **kwargs)
        self.procs[name] = proc
        return proc

    def _check_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise ClusterUnavailable(f"{name} exited with {proc.returncode}\n{self.log_tail()}")

    def _wait(self, what: str, ok, timeout_s: float, daemons: tuple[str, ...]) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            for d in daemons:
                self._check_alive(d)
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.log_tail()}")
            time.sleep(0.2)

    def _wait_port(self, port: int, name: str, timeout_s: float) -> None:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        self._wait(f"{name} on port {port}", listening, timeout_s, (name,))

    def _start_munge(self) -> None:
        # Every Slurm client looks for munged at the default socket, so the cluster uses it: a
        # munged already serving it is shared (and left running), else ours starts there.
        if self._munge_works():
            return
        uid, gid = pwd.getpwnam("munge").pw_uid, grp.getgrnam("munge").gr_gid
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, user=uid, group=gid)
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        os.chown(MUNGE_SOCKET.parent, uid, gid)
        os.chmod(MUNGE_SOCKET.parent, 0o755)
        self._start("munged", [_sbin("munged"), "-F", "--force"], "munged.log", user=uid, group=gid)
        self._wait("munged", self._munge_works, 20, ("munged",))

    @staticmethod
    def _munge_works() -> bool:
        if not MUNGE_SOCKET.exists() or not shutil.which("munge"):
            return False
        encoded = subprocess.run(["munge", "-n"], capture_output=True)
        return encoded.returncode == 0 and subprocess.run(["unmunge"], input=encoded.stdout,
                                                          capture_output=True).returncode == 0

    def _start_mariadb(self, timeout_s: float) -> None:
        data, self.db_socket, self.db_port = self.root / "mysql", self.root / "mysql.sock", _free_port()
        data.mkdir(parents=True)
        done = subprocess.run([_sbin("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
                               "--skip-test-db", "--auth-root-authentication-method=socket"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterUnavailable(f"mariadb-install-db failed: {done.stderr[-2000:]}")
        self._start("mariadbd", [_sbin("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=root",
                                 f"--socket={self.db_socket}", f"--port={self.db_port}", "--bind-address=127.0.0.1",
                                 f"--pid-file={self.root / 'mysql.pid'}", "--innodb-buffer-pool-size=64M"],
                    "mariadbd.log")
        self._wait_port(self.db_port, "mariadbd", timeout_s)
        sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        subprocess.run(["mariadb", "--no-defaults", f"--socket={self.db_socket}", "-u", "root", "-e", sql],
                       check=True, capture_output=True)

    def _write_slurm_conf(self) -> None:
        state = self.root / "state"
        for d in ("ctld", "d", "gpu"):
            (state / d).mkdir(parents=True, exist_ok=True)
        # Fake GPUs: gres File= entries must be character devices (these are /dev/null and /dev/zero).
        for k, minor in ((0, 3), (1, 5)):
            dev = state / "gpu" / f"fakegpu{k}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, minor))
        self.ctld_port, self.slurmd_port, self.dbd_port = _free_port(), _free_port(), _free_port()
        log = self.root / "log"
        auth = "AuthInfo=cred_expire=10"
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join([
            f"ClusterName={CLUSTER}",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            auth,  # a requeued job may start again after 10 s instead of 120 s
            f"StateSaveLocation={state / 'ctld'}",
            f"SlurmdSpoolDir={state / 'd'}",
            f"SlurmctldPidFile={state / 'slurmctld.pid'}",
            f"SlurmdPidFile={state / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            # No cgroups here. jobacct_gather/linux with proctrack/linuxproc left jobs hanging on
            # this machine kind; pgid tracking with no gathering runs them reliably.
            "ProctrackType=proctrack/pgid",
            "JobAcctGatherType=jobacct_gather/none",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1024",  # else each job takes the whole node's memory
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=localhost",
            f"AccountingStoragePort={self.dbd_port}",
            "AccountingStorageTRES=gres/gpu",
            "JobRequeue=1",
            "MinJobAge=300",
            "KillWait=10",
            "ReturnToService=2",
            "InactiveLimit=0",
            "SchedulerType=sched/backfill",
            "PreemptType=preempt/partition_prio",
            "PreemptMode=REQUEUE",
            "SlurmctldParameters=preempt_send_user_signal",  # submitit only sees preemption with it
            "GresTypes=gpu",
            f"NodeName=localhost CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:2 State=UNKNOWN",
            "PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF",
            "PartitionName=low Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE "
            "GraceTime=0",
            "PartitionName=high Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF",
            "",
        ]))
        (self.conf.parent / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName=localhost Name=gpu File={state / 'gpu'}/fakegpu[0-1]\n")
        dbd = self.conf.parent / "slurmdbd.conf"
        dbd.write_text("\n".join([
            "AuthType=auth/munge",
            auth,
            "DbdHost=localhost",
            f"DbdPort={self.dbd_port}",
            "SlurmUser=root",
            f"PidFile={state / 'slurmdbd.pid'}",
            f"LogFile={log / 'slurmdbd.log'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.db_port}",
            "StorageUser=slurm",
            "StoragePass=slurm",
            "StorageLoc=slurm_acct_db",
            "",
        ]))
        dbd.chmod(0o600)  # slurmdbd refuses a config others can read

    def _register_accounts(self) -> None:
        user = pwd.getpwuid(os.getuid()).pw_name
        for args in (("add", "cluster", CLUSTER), ("add", "account", ACCOUNT),
                     ("add", "user", user, f"Account={ACCOUNT}")):
            self.run("sacctmgr", "-i", *args)

    def _wait_idle(self, timeout_s: float) -> None:
        def idle() -> bool:
            done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env={**os.environ, **self.env},
                                  capture_output=True, text=True)
            return done.returncode == 0 and done.stdout.split()[:1] == ["idle"]

        self._wait("the node to be idle", idle, timeout_s, ("slurmctld", "slurmd", "slurmdbd"))
