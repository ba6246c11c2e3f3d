"""Start and stop real Redis and RabbitMQ brokers (and Prometheus) on loopback, on private ports, in a temp dir.

Library use::

    server = RedisServer(free_port(), Path(tmpdir))
    server.start()          # returns once the broker answers
    ...                     # server.url -> "redis://127.0.0.1:PORT/0"
    server.stop()

Command line (used by ``make test``)::

    python -m tests.servers run -- CMD ARGS...

starts one Redis, one RabbitMQ (plain and TLS listeners, plus least-privileged users), one
TLS-only Redis, a Sentinel set (master, replica, sentinel) and one Prometheus, with certificates
made for the run; runs CMD with their URLs in its environment (``EVTOOLS_TEST_REDIS_URL``,
``EVTOOLS_TEST_AMQP_URL``, ``EVTOOLS_TEST_AMQPS_URL``, ``EVTOOLS_TEST_REDISS_URL``,
``EVTOOLS_TEST_TLS_DIR``, ``EVTOOLS_TEST_SENTINEL_URL``, ``EVTOOLS_TEST_SENTINEL_MASTER``,
``EVTOOLS_TEST_AMQP_LIMITED_URL``, ``EVTOOLS_TEST_AMQP_NOREAD_URL``,
``EVTOOLS_TEST_PROMETHEUS_URL``, ``EVTOOLS_TEST_PROMETHEUS_TARGETS``, its file_sd folder, and
``EVTOOLS_TEST_PROMETHEUS_RULES``, the folder its rule files are read from on ``POST /-/reload``),
stops them all and removes the temp dir whatever happens, and exits with CMD's exit code.

Every server runs in its own session (process group), so ``kill()`` takes all of it down.
Each server, and everything the runner starts, also carries a unique marker variable in its
environment; leftovers carrying it (e.g. Erlang's helper processes, or servers orphaned by a
test process that died) are killed at the end.  Erlang's ``epmd`` is shared by all nodes on the
machine and is never killed while a node is registered with it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

RABBIT_BIN = Path(os.environ.get("EVTOOLS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

REDIS_START_TIMEOUT = 30.0
RABBIT_START_TIMEOUT = 150.0
TAG_PREFIX = "EVTOOLS_TEST_TAG_"
LOG_TAIL_LINES = 40

_handed_out: set[int] = set()


class ServerError(RuntimeError):
    """A broker could not be started or stopped."""


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1 that this process has not handed out before."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def new_tag() -> str:
    """Return a fresh marker variable name to put into the environment of processes we start."""
    return TAG_PREFIX + uuid.uuid4().hex


def kill_tagged(tag: str) -> list[int]:
    """SIGKILL every process (except epmd and ourselves) whose environment carries ``tag``."""
    needle = f"\0{tag}=".encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
            comm = (entry / "comm").read_text().strip()
        except OSError:  # gone already, or not ours to read
            continue
        if needle in environ and comm != "epmd":
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


def group_members(pgid: int) -> list[int]:
    """The pids of the live (non-zombie) processes in process group pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def epmd_running() -> bool:
    """Tell whether an Erlang port mapper daemon answers on this machine."""
    try:
        return subprocess.run([EPMD, "-names"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def stop_idle_epmd() -> None:
    """Ask epmd to exit; epmd refuses while any Erlang node is registered with it."""
    try:
        subprocess.run([EPMD, "-kill"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a text file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


class BrokerServer:
    """Common life cycle of a broker process started in its own session (base class)."""

    name = "server"
    start_timeout = 30.0
    stop_timeout = 30.0

    def __init__(self, port: int, workdir: Path) -> None:
        """Remember where the server listens and where it keeps its files."""
        self.port = port
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.tag = new_tag()
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """The broker URL clients connect to."""
        raise NotImplementedError

    # -- to be provided by subclasses ---------------------------------------------------------
    def _prepare(self) -> None:
        """Write config files before a start."""

    def _command(self) -> list[str]:
        """The command line that runs the server in the foreground."""
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        """The environment the server and its control tools run with."""
        return {**os.environ, self.tag: "1"}

    def _wait_ready(self, deadline: float) -> None:
        """Block until the server answers; raise ServerError if it can't or dies."""
        raise NotImplementedError

    def _graceful_stop(self) -> None:
        """Ask the server to shut down."""
        raise NotImplementedError

    def _log_tails(self) -> str:
        """The tails of this server's log files, for error messages."""
        return f"--- {self.log_path} ---\n{tail(self.log_path)}"

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Launch the server in the background and return once it accepts clients."""
        if self.proc is not None and self.proc.poll() is None:
            raise ServerError(f"{self.name} on port {self.port} is already running")
        self._prepare()
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"=== evtools test harness: starting {self.name} at {time.ctime()}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self._command(), cwd=self.workdir, env=self._env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self._wait_ready(began + self.start_timeout)
        except BaseException as exc:
            self.kill()
            if isinstance(exc, ServerError):
                raise ServerError(f"{exc}\n{self._log_tails()}") from None
            raise
        self.startup_seconds = time.monotonic() - began

    def _check_alive(self) -> None:
        """Raise ServerError if the server process has exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ServerError(f"{self.name} on port {self.port} exited with status {self.proc.returncode}"
                              " while starting")

    def is_running(self) -> bool:
        """Tell whether our server process is alive and accepts TCP connections."""
        return self.proc is not None and self.proc.poll() is None and port_open(self.port)

    def stop(self) -> None:
        """Shut the server down cleanly; kill it if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._graceful_stop()
                self.proc.wait(timeout=self.stop_timeout)
            except (OSError, subprocess.SubprocessError):
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything it started (simulates a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:  # not reaped yet, so its group id can't have been reused
            self._kill_children_first(self.proc.pid)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        kill_tagged(self.tag)  # helpers that left the group (Erlang's erl_child_setup, ...)

    @staticmethod
    def _kill_children_first(leader: int, patience: float = 2.0) -> None:
        """SIGKILL the group's members but its leader, letting the leader reap them.

        rabbitmq-server is a shell that waits for beam.smp: killing both at once would leave
        beam.smp a zombie of init (until init reaps it) instead of being reaped by the shell.
        """
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            others = [pid for pid in group_members(leader) if pid != leader]
            if not others:
                return
            for pid in others:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop the server (if running) and start it again on the same port and files."""
        self.stop()
        self.start()

    def __enter__(self) -> BrokerServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show the class, port and state."""
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<{type(self).__name__} {self.url} {state}>"


class RedisServer(BrokerServer):
    """A redis-server without persistence, listening on 127.0.0.1:port."""

    name = "redis"
    start_timeout = REDIS_START_TIMEOUT
    stop_timeout = 10.0

    @property
    def url(self) -> str:
        """The kombu/redis-py URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        """redis-server in the foreground, logging to stdout, no RDB/AOF."""
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
                "--logfile", ""]

    def _cli(self, *args: str, timeout: float = 5.0) -> str:
        """Run redis-cli against our port and return its output ('' on failure)."""
        try:
            done = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
                                  capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout

    def _wait_ready(self, deadline: float) -> None:
        """Poll `redis-cli ping` until PONG, and make sure it is our process that answered."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            self._check_alive()
            if self._cli("ping", timeout=2).strip() == "PONG":
                info = self._cli("info", "server").splitlines()
                if f"process_id:{self.proc.pid}" in (line.strip() for line in info):
                    return
                try:  # someone else's redis answered: ours is about to fail on the busy port
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                self._check_alive()
                raise ServerError(f"another redis already answers on port {self.port}")
            time.sleep(0.05)
        raise ServerError(f"redis on port {self.port} did not answer PING within {self.start_timeout:.0f} s")

    def _graceful_stop(self) -> None:
        """`redis-cli shutdown nosave` (the connection drops, so the output is ignored)."""
        self._cli("shutdown", "nosave", timeout=self.stop_timeout)


OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def make_certificates(folder: Path) -> Path:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate.

    Files: ca.pem, server.pem, server.key, client.pem, client.key (all signed by the CA).
    Returns ``folder``; certificates already there are reused.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "client.pem").exists():
        return folder

    def openssl(*args: str) -> None:
        done = subprocess.run([OPENSSL, *args], cwd=folder, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
        if done.returncode != 0:
            raise ServerError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=evtools test CA")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=evtools-client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
                f"{who}.csr", "-subj", subject)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile", f"{who}.ext")
    return folder


class TlsRedisServer(RedisServer):
    """A redis-server that speaks TLS only and requires a client certificate signed by the CA."""

    name = "redis-tls"

    def __init__(self, port: int, workdir: Path, certs: Path) -> None:
        """Serve TLS on ``port`` with the certificates in ``certs`` (see make_certificates)."""
        super().__init__(port, workdir)
        self.certs = certs

    @property
    def url(self) -> str:
        """The rediss:// URL of database 0 (TLS options go separately)."""
        return f"rediss://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        """redis-server with the plain port off and a TLS port that wants client certificates."""
        c = self.certs
        return [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(c / "server.pem"), "--tls-key-file", str(c / "server.key"),
                "--tls-ca-cert-file", str(c / "ca.pem"), "--tls-auth-clients", "yes",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                "--daemonize", "no", "--logfile", ""]

    def _cli(self, *args: str, timeout: float = 5.0) -> str:
        """redis-cli over TLS, with the client certificate."""
        c = self.certs
        try:
            done = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--tls",
                                   "--cacert", str(c / "ca.pem"), "--cert", str(c / "client.pem"),
                                   "--key", str(c / "client.key"), *args],
                                  capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout


class ReplicaRedisServer(RedisServer):
    """A redis-server replicating the master at 127.0.0.1:``master_port``."""

    name = "redis-replica"

    def __init__(self, port: int, workdir: Path, master_port: int) -> None:
        """Replicate ``master_port``."""
        super().__init__(port, workdir)
        self.master_port = master_port

    def _command(self) -> list[str]:
        """redis-server --replicaof the master."""
        return [*super()._command(), "--replicaof", "127.0.0.1", str(self.master_port)]


SENTINEL_MASTER_NAME = "evtools-master"


class SentinelServer(RedisServer):
    """A Redis Sentinel watching one master; fails over after 1 s of silence."""

    name = "sentinel"

    def __init__(self, port: int, workdir: Path, master_port: int,
                 master_name: str = SENTINEL_MASTER_NAME) -> None:
        """Watch the master on ``master_port`` under ``master_name``."""
        super().__init__(port, workdir)
        self.master_port = master_port
        self.master_name = master_name

    @property
    def url(self) -> str:
        """kombu's sentinel:// URL (give it master_name as a transport option)."""
        return f"sentinel://127.0.0.1:{self.port}/0"

    def _prepare(self) -> None:
        """Write sentinel.conf (Sentinel rewrites it, so only on the first start)."""
        conf = self.workdir / "sentinel.conf"
        if not conf.exists():
            name = self.master_name
            conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                            f"sentinel monitor {name} 127.0.0.1 {self.master_port} 1\n"
                            f"sentinel down-after-milliseconds {name} 1000\n"
                            f"sentinel failover-timeout {name} 5000\n")

    def _command(self) -> list[str]:
        """redis-server in sentinel mode."""
        return [REDIS_SERVER, str(self.workdir / "sentinel.conf"), "--sentinel",
                "--daemonize", "no", "--logfile", ""]

    def master_port_now(self) -> int | None:
        """The port Sentinel names as the master now."""
        lines = self._cli("SENTINEL", "get-master-addr-by-name", self.master_name).split()
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None

    def replicas_ready(self) -> bool:
        """Tell whether Sentinel knows a replica that is up and linked to the master."""
        out = self._cli("SENTINEL", "replicas", self.master_name).splitlines()
        fields = dict(zip(out[::2], out[1::2], strict=False))
        return fields.get("flags") == "slave" and fields.get("master-link-status") == "ok"

    def failover(self) -> None:
        """Ask Sentinel to promote the replica now."""
        answer = self._cli("SENTINEL", "failover", self.master_name).strip()
        if answer != "OK":
            raise ServerError(f"SENTINEL FAILOVER {self.master_name}: {answer or 'no answer'}")


class SentinelSet:
    """A master, a replica and one Sentinel on loopback: ``url`` plus ``transport_options``."""

    def __init__(self, workdir: Path) -> None:
        """Choose ports and folders (nothing runs yet)."""
        self.master = RedisServer(free_port(), workdir / "master")
        self.replica = ReplicaRedisServer(free_port(), workdir / "replica", self.master.port)
        self.sentinel = SentinelServer(free_port(), workdir / "sentinel", self.master.port)
        self.servers: list[RedisServer] = [self.master, self.replica, self.sentinel]
        self.startup_seconds: float | None = None

    name = "sentinel"

    @property
    def url(self) -> str:
        """The sentinel:// URL."""
        return self.sentinel.url

    @property
    def master_name(self) -> str:
        """The master's name, for the transport option master_name."""
        return self.sentinel.master_name

    def start(self, timeout: float = 30.0) -> None:
        """Start all three and wait until Sentinel knows the replica (so a failover can work)."""
        began = time.monotonic()
        for server in self.servers:
            server.start()
        deadline = time.monotonic() + timeout
        while not self.sentinel.replicas_ready():
            if time.monotonic() > deadline:
                raise ServerError(f"sentinel on port {self.sentinel.port} never saw the replica "
                                  f"on port {self.replica.port} linked\n{self.sentinel._log_tails()}")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - began

    def failover(self, timeout: float = 30.0) -> int:
        """Promote the replica through Sentinel; return the new master's port once Sentinel says so."""
        before = self.sentinel.master_port_now()
        self.sentinel.failover()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.sentinel.master_port_now()
            if now is not None and now != before:
                return now
            time.sleep(0.1)
        raise ServerError(f"sentinel did not switch master from port {before} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop all three."""
        for server in reversed(self.servers):
            server.stop()

    def kill(self) -> None:
        """Kill all three."""
        for server in reversed(self.servers):
            server.kill()


class RabbitServer(BrokerServer):
    """A RabbitMQ node named evtest<port>@localhost with all its files in workdir."""

    name = "rabbitmq"
    start_timeout = RABBIT_START_TIMEOUT
    stop_timeout = 60.0

    def __init__(self, port: int, workdir: Path, dist_port: int | None = None,
                 certs: Path | None = None) -> None:
        """Use `port` for AMQP and `dist_port` (default: a free one) for Erlang distribution.

        With ``certs`` (see make_certificates), an amqps listener on ``tls_port`` too; client
        certificates are verified when given, not required.
        """
        super().__init__(port, workdir)
        self.dist_port = dist_port or free_port()
        self.certs = certs
        self.tls_port = free_port() if certs is not None else None
        self.nodename = f"evtest{port}@localhost"
        self.pid_file = self.workdir / "rabbit.pid"

    @property
    def url(self) -> str:
        """The AMQP URL of the default vhost, as guest."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _prepare(self) -> None:
        """Write the cookie, config and plugin files; remove a stale pid file."""
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(10).upper())
            cookie.chmod(0o400)
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")
        conf = ("loopback_users = none\n"
                f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        if self.certs is not None:
            conf += (f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                     f"ssl_options.cacertfile = {self.certs / 'ca.pem'}\n"
                     f"ssl_options.certfile = {self.certs / 'server.pem'}\n"
                     f"ssl_options.keyfile = {self.certs / 'server.key'}\n"
                     "ssl_options.verify = verify_peer\n"
                     "ssl_options.fail_if_no_peer_cert = false\n")
        (self.workdir / "rabbitmq.conf").write_text(conf)
        self.pid_file.unlink(missing_ok=True)

    def _env(self) -> dict[str, str]:
        """Point every path RabbitMQ uses into workdir (see NOTES-brokers.md)."""
        t = self.workdir
        return {
            **super()._env(),
            "HOME": str(t),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_BASE": str(t),
            "RABBITMQ_MNESIA_BASE": str(t / "mnesia"),
            "RABBITMQ_LOG_BASE": str(t / "log"),
            "RABBITMQ_CONFIG_FILE": str(t / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(t / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(t / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(t / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            # Erlang distribution (and an epmd this node has to start) on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _command(self) -> list[str]:
        """rabbitmq-server in the foreground (it execs beam.smp)."""
        return [str(RABBIT_BIN / "rabbitmq-server")]

    def _ctl(self, *args: str) -> list[str]:
        """The rabbitmqctl command line for our node."""
        return [str(RABBIT_BIN / "rabbitmqctl"), "--node", self.nodename, *args]

    def _wait_ready(self, deadline: float) -> None:
        """Run `rabbitmqctl wait` while watching that the server does not die meanwhile."""
        assert self.proc is not None
        budget = max(1, int(deadline - time.monotonic()))
        with open(self.workdir / "rabbitmqctl-wait.log", "wb") as out:
            waiter = subprocess.Popen(self._ctl("wait", "--timeout", str(budget), str(self.pid_file)),
                                      env=self._env(), stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while waiter.poll() is None:
                self._check_alive()
                if time.monotonic() > deadline + 10:
                    raise ServerError(f"rabbitmq on port {self.port} not up within {budget} s")
                time.sleep(0.2)
        finally:
            if waiter.poll() is None:
                os.killpg(waiter.pid, signal.SIGKILL)
                waiter.wait()
        self._check_alive()
        if waiter.returncode != 0:
            raise ServerError(f"`rabbitmqctl wait` for rabbitmq on port {self.port} failed "
                              f"(status {waiter.returncode})")
        while not port_open(self.port):  # the listener is up once `wait` says so; be sure
            self._check_alive()
            if time.monotonic() > deadline:
                raise ServerError(f"rabbitmq is up but port {self.port} does not accept connections")
            time.sleep(0.2)

    @property
    def tls_url(self) -> str:
        """The amqps:// URL of the default vhost, as guest (needs ``certs``)."""
        assert self.tls_port is not None, "started without certificates"
        return f"amqps://guest:guest@127.0.0.1:{self.tls_port}//"

    def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against this node; raise ServerError when it fails."""
        done = subprocess.run(self._ctl(*args), env=self._env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            raise ServerError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def add_user(self, user: str, password: str, configure: str, write: str, read: str) -> str:
        """Create (or reset) a user with these permission regexps on vhost /; return its URL."""
        try:
            self.ctl("add_user", user, password)
        except ServerError as exc:
            if "already exists" not in str(exc):
                raise
            self.ctl("change_password", user, password)
        self.ctl("set_permissions", "-p", "/", user, configure, write, read)
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}//"

    def _graceful_stop(self) -> None:
        """`rabbitmqctl stop <pidfile>`: stops the node and waits for its OS process to exit."""
        subprocess.run(self._ctl("stop", str(self.pid_file)), env=self._env(), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=self.stop_timeout)

    def _log_tails(self) -> str:
        """Tails of the console output, `rabbitmqctl wait` output and the node's log."""
        parts = [super()._log_tails()]
        for path in [self.workdir / "rabbitmqctl-wait.log", *sorted((self.workdir / "log").glob("*.log"))]:
            parts.append(f"--- {path} ---\n{tail(path)}")
        return "\n".join(parts)


# -- command line ----------------------------------------------------------------------------

#: The least-privileged RabbitMQ user the tests run evtools as (docs/brokers.md explains each):
#: configure  its own celeryev.<uuid> queues; control's reply queue and the pidbox exchanges
#:            (kombu declares them before publishing a command or the monitor's wakeup);
#: write      its queues (to bind them), celery.pidbox (to send commands);
#: read       the celeryev exchange (to bind to it), its queues, reply.celery.pidbox.
#: No configure on the celeryev exchange: the workers declared it, evtools binds to it as is.
_PIDBOX_REPLY_QUEUE = r"[0-9a-f-]+\.reply\.celery\.pidbox"
LIMITED_USER = ("evmonitor", "evmonitor-pw",
                rf"^(celeryev\..+|{_PIDBOX_REPLY_QUEUE}|celery\.pidbox|reply\.celery\.pidbox)$",
                rf"^(celeryev\..+|{_PIDBOX_REPLY_QUEUE}|celery\.pidbox)$",
                rf"^(celeryev|celeryev\..+|{_PIDBOX_REPLY_QUEUE}|reply\.celery\.pidbox)$")

#: The same user without read on the celeryev exchange: binding its queue must fail clearly.
NOREAD_USER = ("evnoread", "evnoread-pw", LIMITED_USER[2], LIMITED_USER[3],
               rf"^(celeryev\..+|{_PIDBOX_REPLY_QUEUE}|reply\.celery\.pidbox)$")


def test_environment(redis_server: RedisServer, rabbit: RabbitServer, tls_redis: TlsRedisServer,
                     sentinel: SentinelSet, limited_url: str, noread_url: str) -> dict[str, str]:
    """The variables tests/conftest.py reads to find the servers."""
    return {"EVTOOLS_TEST_REDIS_URL": redis_server.url, "EVTOOLS_TEST_AMQP_URL": rabbit.url,
            "EVTOOLS_TEST_AMQPS_URL": rabbit.tls_url, "EVTOOLS_TEST_REDISS_URL": tls_redis.url,
            "EVTOOLS_TEST_TLS_DIR": str(tls_redis.certs),
            "EVTOOLS_TEST_SENTINEL_URL": sentinel.url,
            "EVTOOLS_TEST_SENTINEL_MASTER": sentinel.master_name,
            "EVTOOLS_TEST_AMQP_LIMITED_URL": limited_url,
            "EVTOOLS_TEST_AMQP_NOREAD_URL": noread_url}

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SI_KERNEL = 0x80  # si_code of a signal the terminal sent to the whole foreground process group


class PrometheusServer(BrokerServer):
    """A Prometheus server on 127.0.0.1:port scraping every second what ``targets/`` lists.

    Tests add a scrape target by writing a file_sd JSON file into :attr:`targets_dir`;
    Prometheus notices within a second or two. Rule files (``*.yml``) written into
    :attr:`rules_dir` are loaded on ``POST /-/reload`` and evaluated every second.
    """

    name = "prometheus"
    start_timeout = 60.0
    stop_timeout = 15.0

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_dir(self) -> Path:
        """Where file_sd target files go."""
        return self.workdir / "targets"

    @property
    def rules_dir(self) -> Path:
        """Where rule files go (loaded on ``POST /-/reload``)."""
        return self.workdir / "rules"

    def _prepare(self) -> None:
        """Write prometheus.yml: one job, 1 s scrapes and evaluations, targets from
        targets/*.json, rules from rules/*.yml."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - '{self.rules_dir}/*.yml'\n"
            "scrape_configs:\n  - job_name: evtools-celery\n    file_sd_configs:\n"
            f"      - files: ['{self.targets_dir}/*.json']\n        refresh_interval: 1s\n")

    def _command(self) -> list[str]:
        """prometheus in the foreground with its data in the work dir (reloadable over HTTP)."""
        return [PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                "--log.level=warn"]

    def _wait_ready(self, deadline: float) -> None:
        """Poll /-/ready until it answers 200."""
        import urllib.request
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerError(f"prometheus on port {self.port} not ready within {self.start_timeout:.0f} s")

    def _graceful_stop(self) -> None:
        """SIGTERM: Prometheus shuts down cleanly."""
        assert self.proc is not None
        self.proc.terminate()


class _Interrupted(BaseException):
    """Raised by our signal handler while the servers are starting."""

    def __init__(self, signum: int) -> None:
        """Remember which signal arrived."""
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    """Signal handler: unwind to the runner's cleanup."""
    raise _Interrupted(signum)


def _say(message: str) -> None:
    """Print one line about the harness to stderr."""
    print(f"[tests.servers] {message}", file=sys.stderr, flush=True)


def _wait_for_child(child: subprocess.Popen[bytes], grace: float) -> int:
    """Wait for CMD with our signals blocked, forwarding the ones it did not get itself."""
    deadline: float | None = None
    while child.poll() is None:
        info = signal.sigtimedwait(FORWARDED, 0.2)
        if info is not None:
            if info.si_code != SI_KERNEL:  # sent to us alone (kill, timeout, CI): pass it on
                child.send_signal(info.si_signo)
            if deadline is None:
                deadline = time.monotonic() + grace
            elif info.si_signo != signal.SIGINT:
                child.kill()  # a second TERM/HUP: no more patience
        if deadline is not None and time.monotonic() > deadline and child.poll() is None:
            _say(f"command still running {grace:.0f} s after the signal, killing it")
            child.kill()
    return child.returncode


def run(cmd: list[str], grace: float = 60.0) -> int:
    """Start Redis and RabbitMQ, run cmd with their URLs in the environment, clean up, return its status."""
    tmp = Path(tempfile.mkdtemp(prefix="evtools-brokers-"))
    tag = new_tag()
    os.environ[tag] = "1"  # inherited by the servers, CMD and everything CMD starts
    had_epmd = epmd_running()
    servers: list[BrokerServer | SentinelSet] = []
    child: subprocess.Popen[bytes] | None = None
    status = 1
    old_handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        certs = make_certificates(tmp / "certs")
        redis_server = RedisServer(free_port(), tmp / "redis")
        rabbit = RabbitServer(free_port(), tmp / "rabbitmq", certs=certs)
        tls_redis = TlsRedisServer(free_port(), tmp / "redis-tls", certs)
        sentinel = SentinelSet(tmp / "sentinel")
        prometheus = PrometheusServer(free_port(), tmp / "prometheus")
        for server in (redis_server, rabbit, tls_redis, sentinel, prometheus):
            servers.append(server)
            server.start()
            _say(f"{server.name} up on {server.url} in {server.startup_seconds:.1f} s")
        limited, noread = rabbit.add_user(*LIMITED_USER), rabbit.add_user(*NOREAD_USER)
        env = {**os.environ, **test_environment(redis_server, rabbit, tls_redis, sentinel, limited,
                                                noread),
               "EVTOOLS_TEST_PROMETHEUS_URL": prometheus.url,
               "EVTOOLS_TEST_PROMETHEUS_TARGETS": str(prometheus.targets_dir),
               "EVTOOLS_TEST_PROMETHEUS_RULES": str(prometheus.rules_dir)}
        child = subprocess.Popen(cmd, env=env)
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        status = _wait_for_child(child, grace)
        if status < 0:
            status = 128 - status
    except _Interrupted as exc:
        _say(f"got signal {signal.Signals(exc.signum).name}, cleaning up")
        status = 128 + exc.signum
    except KeyboardInterrupt:
        _say("interrupted, cleaning up")
        status = 128 + signal.SIGINT
    except ServerError as exc:
        _say(f"could not start the brokers: {exc}")
        status = 1
    except FileNotFoundError as exc:
        _say(f"cannot run {exc.filename}: {exc.strerror}")
        status = 127
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # nothing may interrupt the cleanup
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for server in reversed(servers):
            server.stop()
        kill_tagged(tag)  # whatever CMD left behind (e.g. servers of a test process that died)
        if not had_epmd:
            stop_idle_epmd()
        shutil.rmtree(tmp, ignore_errors=True)
        while signal.sigtimedwait(FORWARDED, 0) is not None:
            pass  # drop signals that arrived during the cleanup, it is done now
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and dispatch."""
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run CMD with a Redis and a RabbitMQ started for it",
                                usage="python -m tests.servers run [--grace S] -- CMD [ARGS...]")
    run_parser.add_argument("--grace", type=float, default=60.0,
                            help="seconds CMD gets to exit after a signal before it is killed")
    run_parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to run")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        run_parser.error("no command given (use: run -- CMD ARGS...)")
    return run(cmd, args.grace)


if __name__ == "__main__":
    sys.exit(main())
