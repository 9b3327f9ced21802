"""Notifications of users who are away, delivered to a webhook
(chat_webhook; docs/notifications.md): written to the outbox in the
message's transaction, claimed by the workers with a lease, signed as
Standard Webhooks does, retried with backoff, each delivery seen once by a
receiver that keeps the ids.

A real receiver runs here, on loopback, and checks every signature.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import threading
import time

import pytest

import chatstack
from conftest import ASAN, BAD_LOG, Tenant
from wsclient import ChatWS

KEY = os.urandom(32)
SECRET = 'whsec_' + base64.b64encode(KEY).decode()


class Receiver:
    """A webhook receiver: answers as told, keeps what it got."""

    def __init__(self):
        self.got = []            # (headers, body dict) of valid requests
        self.bad = []
        self.answers = []        # statuses to give first; then 200
        self.hang = 0            # seconds to wait before answering
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                receiver.take(self, body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def take(self, h, body):
        wid, ts = h.headers['webhook-id'], h.headers['webhook-timestamp']
        want = base64.b64encode(hmac.new(
            KEY, f'{wid}.{ts}.'.encode() + body, hashlib.sha256).digest())
        ok = h.headers['webhook-signature'] == 'v1,' + want.decode()
        if self.hang:
            time.sleep(self.hang)
        with self.lock:
            status = self.answers.pop(0) if self.answers else 200
            (self.got if ok else self.bad).append(
                (dict(h.headers), json.loads(body), status, time.time()))
        h.send_response(status)
        if status == 503:
            h.send_header('Retry-After', '2')
        h.send_header('Content-Length', '0')
        h.end_headers()

    def delivered(self, user, tenant):
        """The deliveries to a user answered 2xx, by webhook-id."""
        with self.lock:
            seen = {}
            for hdrs, body, status, _ in self.got:
                if 200 <= status < 300 and body['user_id'] == user \
                        and body['tenant_id'] == tenant:
                    seen.setdefault(hdrs['webhook-id'], []).append(body)
            return seen

    def wait(self, pred, timeout=15, what='deliveries'):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return
            time.sleep(0.1)
        raise TimeoutError(f'no {what} within {timeout}s: {self.got}')

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope='module')
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope='module')
def hooked(stack, receiver):
    return stack.nginx(name='webhook', EXTRA=(
        f'chat_webhook http://127.0.0.1:{receiver.port}/hooks/chat '
        f'secret={SECRET} window=1s timeout=1s max_age=1h;'))


def items(deliveries):
    return [i for bodies in deliveries.values() for i in bodies[0]['items']]


def test_a_direct_message_to_someone_away(hooked, receiver, tenant):
    alice = tenant.client('alice', nginx=hooked)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['bob'])).json['id']
    r = alice.post(f'conversations/{cid}/messages', {'content': 'hi bob'})
    mid = r.json['id']
    receiver.wait(lambda: receiver.delivered('bob', tenant.name))
    d = receiver.delivered('bob', tenant.name)
    assert len(d) == 1
    (wid, bodies), = d.items()
    assert wid.startswith('ntf_') and len(bodies) == 1
    body = bodies[0]
    assert body['type'] == 'notification' and body['tenant_id'] == tenant.name
    assert body['count'] == 1
    item = body['items'][0]
    assert (item['reason'], item['conversation_id'], item['message_id'],
            item['sender_id'], item['preview']) == \
        ('direct', cid, mid, 'alice', 'hi bob')
    assert not receiver.bad
    # nothing for the sender
    time.sleep(1.5)
    assert not receiver.delivered('alice', tenant.name)


def test_messages_that_come_together_are_one_notification(hooked, receiver,
                                                          tenant):
    alice = tenant.client('alice', nginx=hooked)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['bob'])).json['id']
    for i in range(3):
        alice.post(f'conversations/{cid}/messages', {'content': f'm{i}'})
    receiver.wait(lambda: receiver.delivered('bob', tenant.name))
    time.sleep(1.5)
    d = receiver.delivered('bob', tenant.name)
    assert len(d) == 1, d
    body = list(d.values())[0][0]
    assert body['count'] == 3
    assert [i['preview'] for i in body['items']] == ['m0', 'm1', 'm2']


def test_a_backlog_goes_one_delivery_a_user(stack, hooked, receiver,
                                            tenant):
    # 20 users with 45 waiting rows each: more than a claim's first cut
    # ever took at once (800 rows), so that a cut inside one user's rows
    # would make two deliveries of them (bench/run --only outbox saw it)
    alice = tenant.client('alice', nginx=hooked)
    users = [f'u{i:02}' for i in range(20)]
    cid = alice.create('group', users)['id']
    mid = alice.post(f'conversations/{cid}/messages',
                     {'content': 'backlog'}).json['id']
    stack.query(
        "INSERT INTO chat.outbox (tenant_id, user_id, conversation_id, "
        "message_id, seq, reason, due_at) "
        "SELECT %s, u, %s, %s, (SELECT seq FROM chat.messages WHERE id = %s),"
        " 'mention', now() FROM unnest(%s::text[]) u, generate_series(1, 45)",
        (tenant.name, cid, mid, mid, users))
    receiver.wait(lambda: all(receiver.delivered(u, tenant.name)
                              for u in users), 30, 'a delivery each')
    time.sleep(1.5)
    for u in users:
        d = receiver.delivered(u, tenant.name)
        assert len(d) == 1 and list(d.values())[0][0]['count'] == 45, (u, d)


def test_mentions_mutes_and_replies_in_a_group(hooked, receiver, tenant):
    alice, carol = (tenant.client(u, nginx=hooked) for u in ('alice', 'carol'))
    cid = alice.create('group', ['bob', 'carol', 'dave'])['id']
    r = carol.patch(f'conversations/{cid}/me',
                    {'muted_until': '2099-01-01T00:00:00.000Z'})
    assert r.status == 200, r
    first = alice.post(f'conversations/{cid}/messages',
                       {'content': 'hey @bob @carol',
                        'mentions': ['bob', 'carol']}).json
    tenant.client('dave', nginx=hooked).post(
        f'conversations/{cid}/messages',
        {'content': 'replying', 'reply_to': first['id']})
    receiver.wait(lambda: receiver.delivered('bob', tenant.name)
                  and receiver.delivered('alice', tenant.name))
    time.sleep(1.5)
    got = {u: receiver.delivered(u, tenant.name)
           for u in ('alice', 'bob', 'carol', 'dave')}
    assert items(got['bob'])[0]['reason'] == 'mention'
    assert items(got['alice'])[0]['reason'] == 'reply'
    assert not got['carol']      # muted
    assert not got['dave']       # neither mentioned nor replied to


def test_nothing_for_someone_connected_or_who_read_it(hooked, receiver,
                                                      tenant):
    alice, bob = (tenant.client(u, nginx=hooked) for u in ('alice', 'bob'))
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['bob'])).json['id']
    ws = ChatWS(hooked.port, tenant.token('bob'))
    ws.connect()
    ws.start()
    try:
        alice.post(f'conversations/{cid}/messages', {'content': 'live'})
        ws.wait(lambda m: m.get('type') == 'new_message')
        time.sleep(3)
        assert not receiver.delivered('bob', tenant.name)
    finally:
        ws.close()
    # the laptop closed before it was read: it comes once bob is away
    receiver.wait(lambda: receiver.delivered('bob', tenant.name),
                  what='after closing')
    assert items(receiver.delivered('bob', tenant.name))[0]['preview'] \
        == 'live'

    # read before it was due: nothing
    m = alice.post(f'conversations/{cid}/messages', {'content': 'read'}).json
    bob.post(f'conversations/{cid}/read', {'seq': m['seq']})
    deleted = alice.post(f'conversations/{cid}/messages',
                         {'content': 'deleted'}).json
    alice.delete(f'conversations/{cid}/messages/{deleted["id"]}')
    time.sleep(3)
    previews = [i['preview']
                for i in items(receiver.delivered('bob', tenant.name))]
    assert previews == ['live'], previews


def test_a_failing_receiver_gets_it_again_with_the_same_id(hooked, receiver,
                                                           tenant):
    alice = tenant.client('alice', nginx=hooked)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['erin'])).json['id']
    receiver.answers = [500, 503]
    alice.post(f'conversations/{cid}/messages', {'content': 'persist'})
    receiver.wait(lambda: receiver.delivered('erin', tenant.name),
                  timeout=30)
    with receiver.lock:
        tries = [(h['webhook-id'], s, t) for h, b, s, t in receiver.got
                 if b['user_id'] == 'erin'
                 and b['tenant_id'] == tenant.name]
    assert [s for _, s, _ in tries] == [500, 503, 200]
    assert len({i for i, _, _ in tries}) == 1
    # the 503 said Retry-After: 2
    assert tries[2][2] - tries[1][2] >= 1.9


def test_a_receiver_that_hangs_is_given_up_and_tried_again(hooked, receiver,
                                                           tenant):
    alice = tenant.client('alice', nginx=hooked)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['fay'])).json['id']
    receiver.hang = 2
    try:
        alice.post(f'conversations/{cid}/messages', {'content': 'slow'})
        receiver.wait(lambda: any(b['user_id'] == 'fay'
                                  for _, b, _, _ in receiver.got))
    finally:
        receiver.hang = 0
    # the first try timed out at 1 s (its 200 came too late to count)
    receiver.wait(lambda: sum(1 for _, b, _, _ in receiver.got
                              if b['user_id'] == 'fay') >= 2, timeout=30)
    assert hooked.health() == 200


def test_through_reload_and_a_killed_worker_each_once(receiver, tenant,
                                                      stack):
    # started apart from the stack: the master's report of the killed
    # worker is expected here, and checked by this test alone
    hooked = chatstack.Nginx(
        stack.root, name='webhook-kill9', asan=ASAN,
        PG_CONNINFO=stack.pg.conninfo, REDIS=stack.redis.address,
        JWT_KEY=f'secret_file={stack.secret_file} alg=HS256',
        EXTRA=(f'chat_webhook http://127.0.0.1:{receiver.port}/hooks '
               f'secret={SECRET} window=1s timeout=1s;'))
    hooked.start()
    try:
        hooked.wait_ready()
        victim = killed_worker_run(hooked, receiver, tenant, stack)
    finally:
        hooked.stop()
    bad = [line for line in hooked.log_text().splitlines()
           if BAD_LOG.search(line) and not
           re.search(rf'worker process {victim} exited on signal 9', line)]
    assert not bad, bad[:10]


def killed_worker_run(hooked, receiver, tenant, stack):
    """Messages to twelve users across a reload and a killed worker: each
    user hears once.  Returns the killed worker's pid."""
    alice = Tenant(stack, hooked, tenant.name).client('alice')
    users = [f'u{i}' for i in range(12)]
    convs = {u: alice.post('conversations', dict(
        type='direct', member_ids=[u])).json['id'] for u in users}
    for n, u in enumerate(users):
        alice.post(f'conversations/{convs[u]}/messages', {'content': u})
        if n == 4:
            hooked.command('-s', 'reload')
        if n == 8:
            victim = hooked.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
    receiver.wait(lambda: all(receiver.delivered(u, tenant.name)
                              for u in users), timeout=90)
    time.sleep(2)
    for u in users:
        d = receiver.delivered(u, tenant.name)
        assert len(d) == 1 and [i['preview'] for i in items(d)] == [u], d
    assert stack.query('SELECT count(*) FROM chat.outbox WHERE tenant_id = '
                       '%s', (tenant.name,))[0][0] == 0
    return victim


@pytest.mark.parametrize('args, fault', [
    ('ftp://127.0.0.1/ secret=' + 'k' * 32, 'http:// or https://'),
    ('http://127.0.0.1:9/ secret=' + 'k' * 32 + ' ca=/x.pem', 'unknown'),
    ('http://127.0.0.1:9/ ', 'secret='),
    ('http://127.0.0.1:9/ secret=short', 'at least 24'),
    ('http://127.0.0.1:9/ secret=' + 'k' * 32 + ' window=0', 'window='),
    ('http://127.0.0.1:9/ secret=' + 'k' * 32 + ' colour=red', 'unknown'),
])
def test_bad_webhooks_are_refused_by_nginx_t(check_config, args, fault):
    out = check_config(EXTRA=f'chat_webhook {args};')
    assert out.returncode != 0
    assert 'chat_webhook' in out.stderr and fault in out.stderr, out.stderr
