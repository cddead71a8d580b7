"""A Spark standalone master and worker from the installed pyspark, on 127.0.0.1 only.

Started with ``spark.authenticate`` on (the secret in a mode-600 ``spark-defaults.conf`` under
``SPARK_CONF_DIR``, never on a command line), the master's REST port off, free ports, and a
``SPARK_HOME`` of symlinks so that executors write nothing into site-packages. ``stop()`` sends
SIGTERM to the worker, then the master, and SIGKILL to whatever is left.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandaloneCluster:
    def __init__(self, root: Path, workers: int = 1, cores: int = 1, hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        """``hosts``: the name each worker goes by, in turn (all bind to 127.0.0.1; Spark tells executors apart
        by these names, and never runs a speculative copy on the host of the original)."""
        self.root = root
        self.workers, self.cores, self.hosts = workers, cores, hosts
        self.procs: list[subprocess.Popen] = []
        self.home = root / "spark-home"
        self.conf = root / "conf"
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        fast = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
        env.update(SPARK_HOME=str(self.home), SPARK_CONF_DIR=str(self.conf), SPARK_LOCAL_IP="127.0.0.1",
                   PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   SPARK_DAEMON_JAVA_OPTS=fast, SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
                   SPARK_LOG_DIR=str(self.root / "logs"), SPARK_PID_DIR=str(self.root / "pids"),
                   SPARK_LOCAL_DIRS=str(self.root / "local"))
        return env

    def start(self) -> StandaloneCluster:
        pkg = Path(pyspark.__file__).parent
        self.home.mkdir(parents=True)
        for name in ("bin", "jars", "python", "sbin"):
            if (pkg / name).exists():
                (self.home / name).symlink_to(pkg / name)
        self.conf.mkdir()
        defaults = self.conf / "spark-defaults.conf"
        defaults.write_text(
            "spark.authenticate true\n"
            f"spark.authenticate.secret {secrets.token_hex(16)}\n"
            "spark.ui.enabled false\n"
            "spark.ui.showConsoleProgress false\n"
            "spark.driver.host 127.0.0.1\n"
            "spark.driver.bindAddress 127.0.0.1\n"
            "spark.executor.memory 512m\n"
            "spark.executor.extraJavaOptions -XX:TieredStopAtLevel=1 -XX:+UseSerialGC\n"
            "spark.driver.extraJavaOptions -XX:TieredStopAtLevel=1 -XX:+UseSerialGC\n")
        defaults.chmod(0o600)
        (self.conf / "log4j2.properties").write_text(
            "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %p %c{1}: %m%n\n")
        spark_class = str(self.home / "bin" / "spark-class")
        self._spawn("master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(self.port), "--webui-port", str(self.ui_port)])
        self._wait(lambda s: s.get("status") == "ALIVE", "master ALIVE")
        for i in range(self.workers):
            work = self.root / f"work{i}"
            work.mkdir()
            host = self.hosts[i % len(self.hosts)]
            self._spawn(f"worker{i}", [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", host,
                                       "--cores", str(self.cores), "--memory", "1g", "--work-dir", str(work),
                                       "--webui-port", str(free_port()), self.url])
        self._wait(lambda s: s.get("aliveworkers", 0) >= self.workers, f"{self.workers} alive workers")
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def _wait(self, ok, what: str, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                    if ok(json.load(r)):
                        return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.5)
        logs = "\n".join(f.read_text()[-2000:] for f in self.root.glob("*.log"))
        raise RuntimeError(f"standalone cluster: no {what}\n{logs}")

    def submit(self, args: list[str]) -> subprocess.Popen:
        """Start ``spark-submit`` against the master; its output (merged) is a text pipe."""
        cmd = [str(self.home / "bin" / "spark-submit"), "--master", self.url, *args]
        proc = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` with its executors (they share its process group)."""
        os.killpg(self.procs[1 + i].pid, signal.SIGKILL)

    def stop(self) -> None:
        for p in reversed(self.procs):  # workers first, then the master
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
