"""The servers every test talks to, started once per run.

One Postgres, one Redis and one nginx (master and two workers) serve the
run; each test works in a tenant of its own, so tests cannot see each
other.  Tests that stop or break a server start their own instances (see
the `own_stack` fixture).  nginx runs the AddressSanitizer build of the
module unless CHAT_ASAN=0; at the end the run fails if any nginx error log
shows a sanitizer report, an alert or a crashed worker.
"""

import json
import os
import pathlib
import re
import shutil
import sys
import uuid

import psycopg2
import pytest

T = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(T))
sys.path.insert(0, str(T.parent / 'scripts'))

import chatstack  # noqa: E402
from chatclient import Client, Tokens  # noqa: E402

# each run has a folder of its own: runs side by side do not collide
WORK = T.parent / '.work' / 'test' / f'run-{os.getpid()}'
ASAN = os.environ.get('CHAT_ASAN', '1') != '0'

# what no error log may contain
BAD_LOG = re.compile(r'AddressSanitizer|runtime error:|LeakSanitizer|'
                     r'\[alert\]|\[emerg\]|exited on signal|'
                     r'chat: .* returned no status')

_started = []

class Stack:
    """A Postgres, a Redis and the nginx instances that use them."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg = chatstack.Postgres(self.root, durable=False)
        self.redis = chatstack.Redis(self.root)
        self.secret = chatstack.new_secret()
        self.secret_file = self.root / 'jwt.secret'
        self.secret_file.write_text(self.secret + '\n')
        self.tokens = Tokens(self.secret)
        self.nginxes = []

    def start(self):
        self.pg.start()
        self.pg.migrate()
        self.redis.start()
        return self

    def nginx(self, name='nginx', start=True, **kw):
        """An nginx of this stack; kw overrides template variables."""
        values = dict(PG_CONNINFO=self.pg.conninfo, REDIS=self.redis.address,
                      JWT_KEY=f'secret_file={self.secret_file} alg=HS256')
        values.update(kw)
        ng = chatstack.Nginx(self.root, name=name, asan=ASAN, **values)
        self.nginxes.append(ng)
        _started.append(ng)
        if start:
            ng.start()
            ng.wait_ready()
        return ng

    def query(self, sql, params=()):
        """Rows of one statement, in a session of its own (user chat)."""
        conn = psycopg2.connect(self.pg.conninfo)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def events(self, conversation_id):
        """(seq, type, payload as a dict) of a conversation's events."""
        return [(seq, type_, json.loads(payload)) for seq, type_, payload in
                self.query('SELECT seq, type, payload FROM chat.events '
                           'WHERE conversation_id = %s ORDER BY seq',
                           (conversation_id,))]

    def stop(self):
        for ng in self.nginxes:
            ng.stop()
        self.redis.stop()
        self.pg.stop()


class Tenant:
    """A fresh tenant: users in it, clients for them."""

    def __init__(self, stack, nginx, name=None):
        self.stack = stack
        self.nginx = nginx
        self.name = name or 't-' + uuid.uuid4().hex[:12]

    def token(self, user, **claims):
        return self.stack.tokens.make(user, tenant=self.name, **claims)

    def client(self, user, nginx=None, **claims):
        return Client((nginx or self.nginx).url, self.token(user, **claims))

    def anonymous(self, nginx=None):
        return Client((nginx or self.nginx).url)


@pytest.fixture(scope='session')
def stack():
    shutil.rmtree(WORK, ignore_errors=True)
    s = Stack(WORK / 'main').start()
    s.main = s.nginx()
    yield s
    s.stop()
    _remove_old_runs()


@pytest.fixture(scope='module', autouse=True)
def _module_nginxes(stack):
    """The nginx instances a test module started on the shared stack stop
    with the module: each holds Postgres connections (workers x pool)."""
    before = len(stack.nginxes)
    yield
    extra = stack.nginxes[before:]
    del stack.nginxes[before:]
    for ng in extra:
        ng.stop()


@pytest.fixture
def tenant(stack):
    return Tenant(stack, stack.main)


@pytest.fixture
def new_tenant(stack):
    """Makes more tenants on the shared nginx: new_tenant() -> Tenant."""
    return lambda name=None, nginx=None: Tenant(stack, nginx or stack.main,
                                                name)


@pytest.fixture
def side_db(stack):
    """Opens side sessions to the shared Postgres (psycopg2, as user chat),
    closed at the end of the test: side_db() -> connection."""
    conns = []

    def connect(autocommit=False):
        conn = psycopg2.connect(stack.pg.conninfo)
        conn.autocommit = autocommit
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass
        conn.close()


@pytest.fixture
def check_config(tmp_path):
    """Runs `nginx -t` on a configuration: check_config(**variables) ->
    CompletedProcess.  The variables override those of a good config of the
    dev template; with template=t/conf/custom.conf, POSTGRES is the whole
    chat_postgres directive."""
    n = [0]
    secret = chatstack.new_secret()

    def check(template=chatstack.TEMPLATE, **kw):
        n[0] += 1
        values = dict(
            PG_CONNINFO='host=127.0.0.1 port=5432 dbname=chat user=chat',
            POSTGRES='chat_postgres "host=127.0.0.1 port=5432 dbname=chat '
                     'user=chat" pool=2;',
            REDIS='127.0.0.1:6379',
            JWT_KEY=f'secret={secret} alg=HS256')
        values.update(kw)
        ng = chatstack.Nginx(tmp_path, name=f'conf{n[0]}', asan=ASAN,
                             template=template, **values)
        return ng.test_config()

    return check


@pytest.fixture
def own_stack(request):
    """Servers of this test alone, for tests that stop or break them."""
    root = WORK / re.sub(r'[^A-Za-z0-9_]', '_', request.node.name)[:80]
    shutil.rmtree(root, ignore_errors=True)
    s = Stack(root).start()
    yield s
    s.stop()


def _remove_old_runs():
    """Folders of runs whose process is gone; this run's stays to read."""
    for d in WORK.parent.glob('run-*'):
        pid = int(d.name[4:]) if d.name[4:].isdigit() else 0
        if pid != os.getpid() and not chatstack.pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """No sanitizer report, alert or crash in any error log of the run."""
    found = []
    for ng in _started:
        for line in ng.log_text().splitlines():
            if BAD_LOG.search(line):
                found.append(f'{ng.error_log}: {line}')
    if found:
        print('\nnginx error logs show faults:\n' + '\n'.join(found[:50]))
        session.exitstatus = 1
