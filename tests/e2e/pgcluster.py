"""pgcluster -- a throw-away PostgreSQL cluster for end-to-end tests (tests/pgcluster.sh: initdb + pg_ctl
in a temporary folder on a free port; Debian's `postgresql` package, no system service).

    pg = pgcluster.start_or_skip()      # skip_all naming the package when it cannot run here
    uri = pg.database("t1")             # postgresql://aced@127.0.0.1:PORT/t1, created
    pg.restart("immediate"); pg.stop(); pg.start_again()
"""

import atexit
import os
import random
import shutil
import subprocess
import tempfile

from acedtest import BUILDDIR, SRCDIR, free_port, skip_all

SCRIPT = os.path.join(SRCDIR, "tests", "pgcluster.sh")


def built_with_libpq():
    try:
        with open(os.path.join(BUILDDIR, "config.h")) as f:
            return "#define HAVE_LIBPQ 1" in f.read()
    except OSError:
        return False


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="aced-pg-")
        self.port = free_port()
        subprocess.run([SCRIPT, "start", self.dir, str(self.port)], check=True)
        atexit.register(self.cleanup)

    def _psql(self, sql, db="postgres"):
        bindir = subprocess.run([SCRIPT, "bindir"], capture_output=True, text=True).stdout.strip()
        psql = os.path.join(bindir, "psql")
        if not os.path.exists(psql):
            psql = "psql"
        return subprocess.run([psql, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", "aced",
                               "-d", db, "-c", sql], capture_output=True, text=True)

    def query(self, sql, db):
        """Rows of a query as lists of strings (psql -A -t)."""
        r = self._psql(sql, db)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def database(self, name):
        self._psql('CREATE DATABASE "%s"' % name)
        return "postgresql://aced@127.0.0.1:%d/%s" % (self.port, name)

    def stop(self, mode="fast"):
        subprocess.run([SCRIPT, "stop", self.dir, mode], check=False)

    def restart(self, mode="fast"):
        subprocess.run([SCRIPT, "restart", self.dir, mode], check=True)

    def cleanup(self):
        if self.dir:
            self.stop("immediate")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def start_or_skip():
    if not built_with_libpq():
        skip_all("aced built without libpq (Debian package libpq-dev)")
    if subprocess.run([SCRIPT, "bindir"], capture_output=True).returncode != 0:
        skip_all("PostgreSQL server not installed (Debian package postgresql)")
    return Cluster()


def tanh_model(name, k, h, seed):
    """A k-input, two-output tanh network of h units with 200 samples, from random.seed(seed): slow enough
    per feature (montecarlo) for the job tests to act in the middle of a job."""
    random.seed(seed)
    samples = [[random.random() for _ in range(k)] for _ in range(200)]
    return {"name": name, "features": [{"name": "f%d" % i, "low": 0, "high": 1} for i in range(k)],
            "outputs": ["a", "b"],
            "network": {"type": "feedforward", "layers": [
                {"weights": [[random.gauss(0, 0.3) for _ in range(k)] for _ in range(h)], "bias": [0.0] * h,
                 "activation": "tanh"},
                {"weights": [[random.gauss(0, 0.3) for _ in range(h)] for _ in range(2)], "bias": [0.0, 0.0],
                 "activation": "softmax"}]},
            "data": {"samples": samples}}
