"""The servers ngx_chat runs with, for `make run` and for the test suite.

A private Postgres cluster, a Redis and nginx instances, each listening on
127.0.0.1 only, each under one work folder, each stopped by its own pid.
Nothing here touches the system's own services.

Runs as root (Postgres itself runs as the `postgres` user: initdb refuses
root) under /usr/bin/python3, with the standard library only.
"""

import http.client
import os
import pathlib
import secrets
import signal
import socket
import string
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
PGBIN = pathlib.Path('/usr/lib/postgresql/15/bin')
MODULE = REPO / 'build/release/ngx_chat_module.so'
MODULE_ASAN = REPO / 'build/asan/ngx_chat_module.so'
TEMPLATE = REPO / 'conf.examples/dev.conf'
WEB = REPO / 'web'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f'{what} after {timeout}s')


def port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.2):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def read_pid(path):
    try:
        return int(pathlib.Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(pid, sig=signal.SIGTERM, timeout=20):
    if pid is None or not pid_alive(pid):
        return
    os.kill(pid, sig)
    try:
        wait_for(lambda: not pid_alive(pid), timeout, f'pid {pid} still up')
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 5, f'pid {pid} survived KILL')


def traversable_by_postgres(path):
    return subprocess.run(['runuser', '-u', 'postgres', '--', 'test', '-x',
                           str(path)], capture_output=True).returncode == 0


class Postgres:
    """A private cluster; its data stays under root unless reset."""

    def __init__(self, root, port=None, durable=True):
        self.root = pathlib.Path(root)
        self.port = port or free_port()
        self.durable = durable
        self.dir = self.root / 'pg'

    @property
    def conninfo(self):
        return f'host=127.0.0.1 port={self.port} dbname=chat user=chat'

    def _home(self):
        """The cluster's folder: under root when postgres can reach it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if traversable_by_postgres(self.root):
            return self.dir
        # a checkout below a private home: keep the data in /tmp instead
        link = self.dir
        if not link.is_symlink():
            target = pathlib.Path(subprocess.check_output(
                ['mktemp', '-d', '/tmp/ngx_chat_pg.XXXXXX'], text=True).strip())
            os.chmod(target, 0o755)
            link.symlink_to(target)
        return link.resolve()

    def _as_postgres(self, *cmd, **kw):
        return subprocess.run(['runuser', '-u', 'postgres', '--', *map(str, cmd)],
                              check=True, **kw)

    @property
    def data(self):
        return self._home() / 'data'

    def init(self):
        home = self._home()
        subprocess.run(['install', '-d', '-o', 'postgres', '-g', 'postgres',
                        str(home)], check=True)
        if (home / 'data' / 'PG_VERSION').exists():
            return
        self._as_postgres(PGBIN / 'initdb', '-D', home / 'data', '-U',
                          'postgres', '--auth=trust', '-E', 'UTF8',
                          '--locale=C.UTF-8', stdout=subprocess.DEVNULL)

    def start(self):
        self.init()
        home = self._home()
        # TCP on loopback only: a socket file's path is limited to 107
        # bytes, which a deep checkout would pass
        opts = (f'-p {self.port} -c listen_addresses=127.0.0.1 '
                f"-c unix_socket_directories='' -c max_connections=400")
        if not self.durable:
            # tests trade crash safety of the machine for speed
            opts += ' -c fsync=off -c synchronous_commit=off'
        self._as_postgres(PGBIN / 'pg_ctl', '-D', home / 'data', '-l',
                          home / 'postgres.log', '-w', '-t', '60', '-o', opts,
                          'start', stdout=subprocess.DEVNULL)
        self._setup_database()

    def _setup_database(self):
        exists = self.sql("SELECT 1 FROM pg_roles WHERE rolname = 'chat'",
                          user='postgres', db='postgres')
        if not exists:
            self.sql('CREATE ROLE chat LOGIN', user='postgres', db='postgres')
            self.sql('CREATE DATABASE chat OWNER chat', user='postgres',
                     db='postgres')

    def migrate(self):
        subprocess.run([str(REPO / 'sql/migrate'), self.conninfo], check=True,
                       stdout=subprocess.DEVNULL)

    def sql(self, query, user='chat', db='chat'):
        out = subprocess.run(
            ['psql', f'host=127.0.0.1 port={self.port} dbname={db} '
             f'user={user}', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', query],
            check=True, capture_output=True, text=True)
        return out.stdout.strip()

    @property
    def pid(self):
        return read_pid(self._home() / 'data' / 'postmaster.pid')

    def stop(self):
        pid = self.pid
        if pid and pid_alive(pid):
            self._as_postgres(PGBIN / 'pg_ctl', '-D', self._home() / 'data',
                              '-m', 'fast', '-w', 'stop',
                              stdout=subprocess.DEVNULL)

    def kill(self):
        stop_pid(self.pid, signal.SIGKILL)


class Redis:
    def __init__(self, root, port=None):
        self.dir = pathlib.Path(root) / 'redis'
        self.port = port or free_port()

    @property
    def address(self):
        return f'127.0.0.1:{self.port}'

    @property
    def pidfile(self):
        return self.dir / 'redis.pid'

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(['redis-server', '--port', str(self.port), '--bind',
                        '127.0.0.1', '--save', '', '--appendonly', 'no',
                        '--daemonize', 'yes', '--pidfile', str(self.pidfile),
                        '--logfile', str(self.dir / 'redis.log'), '--dir',
                        str(self.dir)], check=True)
        wait_for(lambda: port_open(self.port), 10, 'redis did not listen')

    @property
    def pid(self):
        return read_pid(self.pidfile)

    def stop(self):
        stop_pid(self.pid)

    def kill(self):
        stop_pid(self.pid, signal.SIGKILL)


class Nginx:
    """One nginx instance with its own prefix, rendered from a template."""

    def __init__(self, root, name='nginx', port=None, workers=2, asan=False,
                 template=TEMPLATE, **variables):
        self.prefix = pathlib.Path(root) / name
        self.port = port or free_port()
        self.workers = workers
        self.asan = asan
        self.template = pathlib.Path(template)
        self.variables = variables

    @property
    def module(self):
        return MODULE_ASAN if self.asan else MODULE

    @property
    def error_log(self):
        return self.prefix / 'logs' / 'error.log'

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    def render(self):
        for d in ('logs', 'conf', 'client_body_temp'):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        # workers run as nobody when the master is root
        subprocess.run(['chown', 'nobody', str(self.prefix / 'client_body_temp')],
                       check=True)
        values = dict(MODULE=self.module, PREFIX=self.prefix, PORT=self.port,
                      WORKERS=self.workers, LOG_LEVEL='info', EXTRA='',
                      WS_EXTRA='', FILES=self.prefix / 'files', WEB=WEB)
        values.update(self.variables)
        text = string.Template(self.template.read_text()).substitute(values)
        (self.prefix / 'conf' / 'nginx.conf').write_text(text)

    def env(self):
        env = dict(os.environ)
        if self.asan:
            libs = [subprocess.check_output(['gcc', f'-print-file-name={lib}'],
                                            text=True).strip()
                    for lib in ('libasan.so', 'libubsan.so')]
            env['LD_PRELOAD'] = ':'.join(libs)
            # nginx frees little at exit by design: leaks are not findings
            env['ASAN_OPTIONS'] = 'detect_leaks=0:abort_on_error=1'
            env['UBSAN_OPTIONS'] = 'print_stacktrace=1:halt_on_error=1'
        return env

    def command(self, *args):
        return subprocess.run(['nginx', '-p', str(self.prefix), '-c',
                               'conf/nginx.conf', *args], env=self.env(),
                              capture_output=True, text=True)

    def test_config(self):
        self.render()
        return self.command('-t')

    def start(self):
        self.render()
        out = self.command()
        if out.returncode != 0:
            raise RuntimeError(f'nginx did not start: {out.stderr}')
        wait_for(lambda: self.pid and port_open(self.port), 20,
                 'nginx did not listen')
        wait_for(lambda: len(self.worker_pids()) == self.workers, 20,
                 'nginx workers did not start')

    def wait_ready(self, path='/api/chat/health', timeout=20):
        """Until health answers 200 several times in a row (any worker)."""
        streak = [0]

        def ready():
            streak[0] = streak[0] + 1 if self.health(path) == 200 else 0
            return streak[0] >= 4 * self.workers

        wait_for(ready, timeout, 'nginx did not become ready')

    def health(self, path='/api/chat/health'):
        try:
            conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                              timeout=2)
            conn.request('GET', path)
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    @property
    def pid(self):
        return read_pid(self.prefix / 'nginx.pid')

    def worker_pids(self):
        pid = self.pid
        if not pid:
            return []
        try:
            children = pathlib.Path(f'/proc/{pid}/task/{pid}/children')
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return []
        return [p for p in pids if 'worker process' in _cmdline(p)]

    def reload(self):
        os.kill(self.pid, signal.SIGHUP)

    def stop(self, graceful=False):
        stop_pid(self.pid, signal.SIGQUIT if graceful else signal.SIGTERM)

    def log_text(self):
        try:
            return self.error_log.read_text(errors='replace')
        except OSError:
            return ''


def _cmdline(pid):
    try:
        return pathlib.Path(f'/proc/{pid}/cmdline').read_text()
    except OSError:
        return ''


def new_secret():
    return secrets.token_hex(32)
