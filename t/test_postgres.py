"""Postgres on nginx's event loop: a query that waits does not stop the
worker; a full pool queue and a Postgres that is down answer 503 with
Retry-After; Postgres back is served again; a query without an answer for
30 s fails the same way and its connection is replaced; libpq moving on
to the next host of the conninfo is followed; racing creators of one
direct conversation make one.

Locks are held from side sessions (psycopg2) so that a request's query
waits in Postgres for as long as the test wants.
"""

import concurrent.futures
import pathlib
import re
import threading
import time

import psycopg2
import pytest

import chatstack
from chatclient import Client, expect_error

CUSTOM_TEMPLATE = pathlib.Path(__file__).resolve().parent / 'conf/custom.conf'

POOL = concurrent.futures.ThreadPoolExecutor


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f'{what} within {timeout}s')


def waiting_on_lock(stack, function):
    """How many sessions wait for a lock in chat.api_<function>."""
    return stack.query(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
        "'Lock' AND query LIKE %s", (f'%chat.api_{function}(%',))[0][0]


def lock_conversation(conn, cid):
    """Locks the conversation row the way its writers do, in an open
    transaction of the side session conn, until conn.rollback()."""
    with conn.cursor() as cur:
        cur.execute('SELECT id FROM chat.conversations WHERE id = %s '
                    'FOR UPDATE', (cid,))
        assert cur.fetchall() == [(cid,)]


def group(c, title=None):
    r = c.post('conversations', {'type': 'group', 'member_ids': ['bob'],
                                 'title': title})
    assert r.status == 201, r
    return r.json['id']


def health(c):
    return c.get('health', token=None)


# (a) nothing blocks the worker

def test_a_waiting_query_does_not_block_its_worker(stack, new_tenant,
                                                   side_db):
    ng = stack.nginx(name='one-worker', workers=1)
    try:
        assert len(ng.worker_pids()) == 1
        alice = new_tenant(nginx=ng).client('alice')
        locked, other = group(alice, 'locked'), group(alice, 'other')
        worker = health(alice).json['pid']

        db = side_db()
        lock_conversation(db, locked)
        with POOL(1) as pool:
            pending = pool.submit(alice.patch, f'conversations/{locked}',
                                  {'title': 'after the lock'})
            wait_for(lambda: waiting_on_lock(stack, 'conversation_update'),
                     10, 'the PATCH did not wait for the lock')

            # the same (single) worker answers the others meanwhile
            started = time.monotonic()
            for _ in range(5):
                r = alice.get(f'conversations/{other}', timeout=10)
                assert r.status == 200 and r.json['title'] == 'other', r
                r = alice.get('conversations', timeout=10)
                assert r.status == 200 and len(r.json['items']) == 2, r
            h = health(alice)
            assert h.status == 200 and h.json['pid'] == worker
            assert h.json['postgres']['busy'] == 1
            assert time.monotonic() - started < 10
            assert not pending.done()
            assert waiting_on_lock(stack, 'conversation_update') == 1

            db.rollback()                   # the lock goes
            r = pending.result(timeout=10)

        assert r.status == 200, r
        assert r.json['title'] == 'after the lock'
        assert r.json['last_seq'] == 1
        assert alice.get(f'conversations/{locked}').json['title'] \
            == 'after the lock'
        assert health(alice).json['pid'] == worker
    finally:
        ng.stop()


# (d) the pool's wait queue is bounded

def test_a_full_wait_queue_answers_503(stack, new_tenant, side_db):
    ng = stack.nginx(name='pool1-queue1', workers=1,
                     template=CUSTOM_TEMPLATE,
                     POSTGRES=f'chat_postgres "{stack.pg.conninfo}" '
                              f'pool=1 queue=1 timeout=30s;')
    try:
        alice = new_tenant(nginx=ng).client('alice')
        locked, other = group(alice), group(alice)
        h = health(alice).json['postgres']
        assert (h['connections'], h['queue_max']) == (1, 1)

        db = side_db()
        lock_conversation(db, locked)
        with POOL(2) as pool:
            first = pool.submit(alice.patch, f'conversations/{locked}',
                                {'title': 'first'})
            wait_for(lambda: waiting_on_lock(stack, 'conversation_update'),
                     10, 'the PATCH did not wait for the lock')
            second = pool.submit(alice.get, f'conversations/{other}')
            wait_for(lambda: health(alice).json['postgres']['waiting'] == 1,
                     10, 'the second request did not queue')

            third = alice.get(f'conversations/{other}', timeout=10)
            expect_error(third, 503)
            assert third.headers['Retry-After'] == '1'
            assert 'wait' in third.error[1]
            assert not first.done() and not second.done()

            db.rollback()
            r1, r2 = first.result(timeout=10), second.result(timeout=10)
        assert r1.status == 200 and r1.json['title'] == 'first', r1
        assert r2.status == 200 and r2.json['id'] == other, r2
        h = health(alice).json['postgres']
        assert (h['busy'], h['waiting'], h['ready']) == (0, 0, 1)
        assert alice.get(f'conversations/{other}').status == 200
    finally:
        ng.stop()


def test_a_query_waiting_past_the_timeout_answers_503(stack, new_tenant,
                                                      side_db):
    ng = stack.nginx(name='pool1-timeout', workers=1,
                     template=CUSTOM_TEMPLATE,
                     POSTGRES=f'chat_postgres "{stack.pg.conninfo}" '
                              f'pool=1 queue=8 timeout=500ms;')
    try:
        alice = new_tenant(nginx=ng).client('alice')
        locked, other = group(alice), group(alice)
        db = side_db()
        lock_conversation(db, locked)
        with POOL(1) as pool:
            first = pool.submit(alice.patch, f'conversations/{locked}',
                                {'title': 'first'})
            wait_for(lambda: waiting_on_lock(stack, 'conversation_update'),
                     10, 'the PATCH did not wait for the lock')
            started = time.monotonic()
            r = alice.get(f'conversations/{other}', timeout=10)
            waited = time.monotonic() - started
            expect_error(r, 503)
            assert 0.4 <= waited < 5, waited
            db.rollback()
            assert first.result(timeout=10).status == 200
        assert alice.get(f'conversations/{other}').status == 200
    finally:
        ng.stop()


def test_a_query_without_an_answer_for_30s_answers_503_and_is_replaced(
        stack, new_tenant, side_db):
    """A server that went without a word (a half-open connection) leaves a
    query without an answer, as a lock held for longer than the deadline
    does: the request fails as when Postgres goes away, and its connection
    is replaced."""
    ng = stack.nginx(name='pg-query-deadline', workers=1,
                     template=CUSTOM_TEMPLATE,
                     POSTGRES=f'chat_postgres "{stack.pg.conninfo}" '
                              f'pool=2 timeout=60s;')
    try:
        alice = new_tenant(nginx=ng).client('alice')
        locked, other = group(alice), group(alice)
        db = side_db()
        lock_conversation(db, locked)
        started = time.monotonic()
        r = alice.patch(f'conversations/{locked}', {'title': 'late'},
                        timeout=60)
        waited = time.monotonic() - started
        expect_error(r, 503)
        assert r.headers['Retry-After'] == '1'
        assert 29 <= waited < 40, waited
        # the other connection served meanwhile; the lost one is back
        assert alice.get(f'conversations/{other}').status == 200
        wait_for(lambda: health(alice).json['postgres']['ready'] == 2, 5,
                 'the connection was not replaced')
        assert 'query had no answer in 30000 ms' in ng.log_text()
        db.rollback()
        r = alice.patch(f'conversations/{locked}', {'title': 'after'})
        assert r.status == 200 and r.json['title'] == 'after', r
    finally:
        ng.stop()


# (b) Postgres goes away and comes back

def test_postgres_down_answers_503_and_back_is_served(own_stack):
    s = own_stack
    ng = s.nginx(name='pg-down')
    token = s.tokens.make('alice', tenant='t-down', name='Alice')
    alice = Client(ng.url, token)
    cid = group(alice, 'kept')
    workers = sorted(ng.worker_pids())
    assert len(workers) == 2

    # a request whose query waits in Postgres when it goes away
    side = psycopg2.connect(s.pg.conninfo)
    lock_conversation(side, cid)
    with POOL(1) as pool:
        pending = pool.submit(alice.patch, f'conversations/{cid}',
                              {'title': 'lost'})
        wait_for(lambda: waiting_on_lock(s, 'conversation_update'), 10,
                 'the PATCH did not wait for the lock')
        s.pg.stop()
        expect_error(pending.result(timeout=10), 503)
    side.close()

    # every request while it is down: 503 with Retry-After, promptly
    for _ in range(6):
        started = time.monotonic()
        for r in (alice.get(f'conversations/{cid}', timeout=10),
                  alice.get('conversations', timeout=10),
                  alice.post('conversations', {'type': 'group'},
                             timeout=10)):
            expect_error(r, 503)
            assert r.headers['Retry-After'] == '1'
        assert time.monotonic() - started < 10
        h = health(alice)
        assert h.status == 503, h
        assert h.json['status'] == 'unavailable'
        assert h.json['postgres']['ready'] == 0
    # refused tokens are still refused, not 503
    expect_error(alice.get('conversations', token='garbage'), 401)
    assert sorted(ng.worker_pids()) == workers      # nobody crashed

    s.pg.start()
    wait_for(lambda: alice.get(f'conversations/{cid}').status == 200, 20,
             'not served again after Postgres came back')
    ng.wait_ready()                                 # every worker
    for _ in range(6):
        r = alice.get(f'conversations/{cid}')
        assert r.status == 200 and r.json['title'] == 'kept', r
    assert group(alice, 'new')
    assert sorted(ng.worker_pids()) == workers


# (c) racing creators of one direct conversation

def test_concurrent_direct_creation_makes_one_conversation(stack,
                                                           new_tenant):
    t = new_tenant()
    for u in ('alice', 'bob'):      # both have acted before
        group(t.client(u))
    clients = [t.client('alice'), t.client('bob')]
    start = threading.Barrier(20)

    def create(i):
        start.wait()
        return clients[i % 2].post('conversations', {
            'type': 'direct', 'member_ids': ['bob' if i % 2 == 0
                                             else 'alice']})

    with POOL(20) as pool:
        answers = list(pool.map(create, range(20)))
    assert sorted(r.status for r in answers) == [200] * 19 + [201], answers
    assert len({r.json['id'] for r in answers}) == 1
    cid = answers[0].json['id']
    assert stack.query("SELECT id, member_count FROM chat.conversations "
                       "WHERE tenant_id = %s AND type = 'direct'",
                       (t.name,)) == [(cid, 2)]
    assert stack.query('SELECT user_id, role FROM chat.members WHERE '
                       'conversation_id = %s ORDER BY user_id', (cid,)) \
        == [('alice', 'member'), ('bob', 'member')]


def test_direct_creation_from_both_sides_at_once_succeeds(stack, new_tenant,
                                                          side_db):
    """Both users new in a known tenant.  A side session holds the tenant
    row so that both creators stop at the same point (the foreign key
    check of their first user row), then lets them go together: the
    interleaving that racing clients produce by chance."""
    t = new_tenant()
    r = t.client('carol').post('conversations', {'type': 'group'})
    assert r.status == 201, r                  # the tenant exists
    db = side_db()
    with db.cursor() as cur:
        cur.execute('SELECT id FROM chat.tenants WHERE id = %s FOR UPDATE',
                    (t.name,))
    alice, bob = t.client('alice'), t.client('bob')
    with POOL(2) as pool:
        a = pool.submit(alice.post, 'conversations',
                        {'type': 'direct', 'member_ids': ['bob']})
        b = pool.submit(bob.post, 'conversations',
                        {'type': 'direct', 'member_ids': ['alice']})
        wait_for(lambda: waiting_on_lock(stack, 'conversation_create') == 2,
                 10, 'the creators did not both wait')
        db.rollback()
        ra, rb = a.result(timeout=20), b.result(timeout=20)
    assert sorted([ra.status, rb.status]) == [200, 201], (ra, rb)
    assert ra.json['id'] == rb.json['id']
    assert stack.query("SELECT count(*) FROM chat.conversations WHERE "
                       "tenant_id = %s AND type = 'direct'",
                       (t.name,)) == [(1,)]


# a connection that Postgres closes

def backends(stack):
    """Postgres sessions of the nginx of the terminated fixture."""
    return stack.query("SELECT count(*) FROM pg_stat_activity WHERE "
                       "application_name = 'ngx_chat_terminated'")[0][0]


@pytest.fixture(scope='module')
def terminated(stack):
    """An nginx whose every Postgres connection is terminated once they are
    all up: (stack, nginx, client, conversation id, sessions ended)."""
    ng = stack.nginx(name='terminated',
                     PG_CONNINFO=stack.pg.conninfo
                     + ' application_name=ngx_chat_terminated')
    client = Client(ng.url, stack.tokens.make(
        'alice', tenant='t-terminated', name='Alice'))
    cid = group(client, 'before')
    wait_for(lambda: backends(stack) == 8, 20,
             'not every connection of the pools is up')
    killed = stack.query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'ngx_chat_terminated'")[0][0]
    yield stack, ng, client, cid, killed
    ng.stop()


def test_terminated_connections_are_replaced(terminated):
    stack, ng, client, cid, killed = terminated
    assert killed == 8                  # 2 workers, pool=4
    wait_for(lambda: client.get(f'conversations/{cid}').status == 200, 20,
             'not served again after the connections were terminated')
    ng.wait_ready()
    for _ in range(8):
        r = client.get(f'conversations/{cid}')
        assert r.status == 200 and r.json['title'] == 'before', r
    wait_for(lambda: backends(stack) == 8, 20,
             'the pools did not open all their connections again')


def test_a_lost_connection_leaves_no_alert(terminated):
    # libpq has closed the socket of a lost connection itself: the module
    # must not take it out of epoll ("epoll_ctl() failed (9: Bad file
    # descriptor)")
    stack, ng, client, cid, killed = terminated
    wait_for(lambda: client.get(f'conversations/{cid}').status == 200, 20,
             'not served again after the connections were terminated')
    alerts = [line for line in ng.log_text().splitlines()
              if '[alert]' in line or '[emerg]' in line]
    assert alerts == []


# (e) durability: what a crash may lose without harm commits lazily

def commit_mode_after(conn, sql, params):
    """synchronous_commit as a statement leaves its transaction."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        cur.fetchall()
        cur.execute('SHOW synchronous_commit')
        mode, = cur.fetchone()
    conn.rollback()
    return mode


def test_only_last_seen_and_delivery_reports_commit_lazily(new_tenant,
                                                           side_db):
    tenant = new_tenant()
    alice = tenant.client('alice')
    cid = group(alice)
    # the test cluster commits lazily throughout: this session does not
    conn = side_db(autocommit=True)
    with conn.cursor() as cur:
        cur.execute('SET synchronous_commit = on')
    conn.autocommit = False
    args = '{"conversation_id": %d, "content": "kept"}' % cid
    assert commit_mode_after(
        conn, 'SELECT * FROM chat.api_message_send(%s, %s, NULL, %s)',
        (tenant.name, 'alice', args)) == 'on'
    assert commit_mode_after(
        conn, 'SELECT * FROM chat.api_presence_changed(%s, %s, NULL, '
        '\'{"online": ["alice"], "announce": true}\')',
        (tenant.name, 'alice')) == 'off'
    assert commit_mode_after(
        conn, 'SELECT chat.delivered(%s, %s, %s, %s)',
        ([tenant.name], ['bob'], [cid], [1])) == 'off'
    # and the next transaction of the session is durable again
    assert commit_mode_after(conn, 'SELECT 1', ()) == 'on'



# libpq moves on to the next host of the conninfo

def test_a_conninfo_whose_first_host_refuses_is_served_promptly(stack,
                                                                new_tenant):
    """libpq closes the refused socket and opens one to the next host; in
    a running worker the new socket gets the old one's number (the lowest
    free), and must be watched anew.  Terminated connections make every
    connection of the pools go through that again."""
    closed = chatstack.free_port()
    conninfo = (f'host=127.0.0.1,127.0.0.1 port={closed},{stack.pg.port} '
                f'dbname=chat user=chat application_name=ngx_chat_next_host')
    ng = stack.nginx(name='pg-next-host', PG_CONNINFO=conninfo)
    try:
        alice = new_tenant(nginx=ng).client('alice')
        cid = group(alice, 'second host')

        def sessions():
            return stack.query(
                "SELECT count(*) FROM pg_stat_activity WHERE "
                "application_name = 'ngx_chat_next_host'")[0][0]

        for _ in range(3):
            wait_for(lambda: sessions() == 8, 10,
                     'the pools did not open all their connections')
            stack.query("SELECT pg_terminate_backend(pid) FROM "
                        "pg_stat_activity WHERE application_name = "
                        "'ngx_chat_next_host'")
            # connect timeout=5s: a connection that hangs takes longer
            wait_for(lambda: sessions() == 8, 3,
                     'the pools did not connect again promptly')
            for _ in range(8):
                r = alice.get(f'conversations/{cid}', timeout=5)
                assert r.status == 200, r
                assert r.json['title'] == 'second host', r
        alerts = [line for line in ng.log_text().splitlines()
                  if '[alert]' in line or '[emerg]' in line]
        assert alerts == []
    finally:
        ng.stop()


# (f) what Postgres says besides results

def test_postgres_notices_go_to_the_error_log_in_nginx_format(stack, tenant):
    # a WARNING raised inside the module's own query reaches the error log
    # as an nginx line (time, level, pid, the connection), never as the raw
    # "WARNING:  ..." line libpq's default prints to stderr
    marker = 'notice-' + tenant.name
    stack.query(f"""
        CREATE FUNCTION chat.t_warn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.content = '{marker}' THEN
                RAISE WARNING 'seen %%', NEW.content;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER t_warn AFTER INSERT ON chat.messages
            FOR EACH ROW EXECUTE FUNCTION chat.t_warn();""")
    try:
        alice = tenant.client('alice')
        cid = group(alice)
        r = alice.post(f'conversations/{cid}/messages', {'content': marker})
        assert r.status == 201, r
    finally:
        stack.query('DROP TRIGGER t_warn ON chat.messages;'
                    'DROP FUNCTION chat.t_warn();')
    lines = [line for line in stack.main.log_text().splitlines()
             if marker in line]
    assert len(lines) == 1, lines
    assert re.match(r'\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[warn\] \d+#\d+: '
                    r'chat pg: connection \d+: postgres WARNING 01000: '
                    rf'seen {marker}$', lines[0]), lines[0]
