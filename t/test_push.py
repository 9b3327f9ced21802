"""Web Push (chat_push; docs/notifications.md): a browser's subscription
is kept for its user (POST/DELETE push/subscriptions), and a notification
of the outbox goes to each one, encrypted for that browser (RFC 8291
aes128gcm) and signed with the server's VAPID key (RFC 8292).

A real push service runs here over TLS, with a CA made by the test: it
checks the VAPID token against the key the server publishes (GET
push/key), decrypts each message with the browser's private key, and
answers 201, 410 (the subscription is gone) or 500 then 201, as the path
says.  A small DNS server lets nginx's resolver find the service by name.
A file of its own: every nginx with chat_push or chat_webhook claims from
the one outbox.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import chatstack
from chatclient import expect_error
from conftest import Tenant
from wsclient import ChatWS


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def point(public_key):
    return public_key.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.UncompressedPoint)


class Browser:
    """What a browser keeps of one subscription: its keys."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscription(self):
        return {'endpoint': self.endpoint,
                'p256dh': b64u(point(self.key.public_key())),
                'auth': b64u(self.auth)}

    def decrypt(self, body):
        """RFC 8291 section 3.4 and RFC 8188, as a browser does."""
        salt, rs, idlen = body[:16], body[16:20], body[20]
        keyid, sealed = body[21:21 + idlen], body[21 + idlen:]
        assert int.from_bytes(rs, 'big') == 4096 and idlen == 65
        sender = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), keyid)
        secret = self.key.exchange(ec.ECDH(), sender)

        def mac(key, data):
            return hmac.new(key, data, hashlib.sha256).digest()

        ikm = mac(mac(self.auth, secret), b'WebPush: info\x00'
                  + point(self.key.public_key()) + keyid + b'\x01')
        prk = mac(salt, ikm)
        cek = mac(prk, b'Content-Encoding: aes128gcm\x00\x01')[:16]
        nonce = mac(prk, b'Content-Encoding: nonce\x00\x01')[:12]
        plain = AESGCM(cek).decrypt(nonce, sealed, None)
        assert plain.rstrip(b'\x00').endswith(b'\x02'), plain
        return json.loads(plain.rstrip(b'\x00')[:-1])


def vapid_claims(header, server_key):
    """The claims of a valid 'vapid t=..., k=...' of the server's key."""
    assert header.startswith('vapid '), header
    fields = dict(f.strip().split('=', 1) for f in header[6:].split(','))
    assert fields['k'] == server_key, fields
    head, claims, sig = fields['t'].split('.')
    assert json.loads(unb64u(head)) == {'typ': 'JWT', 'alg': 'ES256'}
    raw = unb64u(sig)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], 'big'),
                               int.from_bytes(raw[32:], 'big'))
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), unb64u(server_key))
    public.verify(der, f'{head}.{claims}'.encode(),
                  ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64u(claims))


class PushService:
    """A push service: keeps what it was sent, answers as the path says."""

    def __init__(self, cert, key):
        self.got = []          # (path, headers, body)
        self.tries = {}
        self.lock = threading.Lock()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                with service.lock:
                    service.got.append((self.path, dict(self.headers), body))
                    n = service.tries[self.path] = \
                        service.tries.get(self.path, 0) + 1
                status = 201
                if self.path.startswith('/gone/'):
                    status = 410
                elif self.path.startswith('/flaky/') and n == 1:
                    status = 500
                self.send_response(status)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket,
                                             server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def to(self, path):
        with self.lock:
            return [(h, b) for p, h, b in self.got if p == path]

    def wait(self, path, n=1, timeout=15):
        end = time.time() + timeout
        while len(self.to(path)) < n and time.time() < end:
            time.sleep(0.1)
        assert len(self.to(path)) >= n, (path, self.got)
        return self.to(path)

    def stop(self):
        self.server.shutdown()


class DNS:
    """Answers A queries for one name with 127.0.0.1; others NXDOMAIN."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.asked = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid, = struct.unpack('!H', query[:2])
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += 1 + query[i]
            qtype, = struct.unpack('!H', query[i + 1:i + 3])
            question = query[12:i + 5]
            name = '.'.join(labels)
            self.asked.append((name, qtype))
            known = name == self.name
            answers = b''
            if known and qtype == 1:
                answers = (b'\xc0\x0c' + struct.pack('!HHIH', 1, 1, 60, 4)
                           + socket.inet_aton('127.0.0.1'))
            flags = 0x8180 if known else 0x8183
            head = struct.pack('!HHHHHH', qid, flags, 1,
                               1 if answers else 0, 0, 0)
            self.sock.sendto(head + question + answers, peer)

    def stop(self):
        self.sock.close()


def openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp('push')
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
            '-out', 'ca.pem', '-subj', '/CN=push-ca', '-days', '1', cwd=d)
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
            '-nodes', '-keyout', 'push.key', '-out', 'push.csr', '-subj',
            '/CN=push.test', cwd=d)
    (d / 'push.ext').write_text('subjectAltName=DNS:push.test,'
                                'IP:127.0.0.1\n')
    openssl('x509', '-req', '-in', 'push.csr', '-CA', 'ca.pem', '-CAkey',
            'ca.key', '-CAcreateserial', '-out', 'push.pem', '-days', '1',
            '-extfile', 'push.ext', cwd=d)
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-out', 'vapid.pem', cwd=d)
    openssl('genpkey', '-algorithm', 'RSA', '-out', 'rsa.pem', cwd=d)
    vapid = serialization.load_pem_private_key(
        (d / 'vapid.pem').read_bytes(), None)
    return dict(dir=d, ca=d / 'ca.pem', cert=d / 'push.pem',
                key=d / 'push.key', vapid=d / 'vapid.pem', rsa=d / 'rsa.pem',
                vapid_public=b64u(point(vapid.public_key())))


@pytest.fixture(scope='module')
def service(keys):
    s = PushService(keys['cert'], keys['key'])
    yield s
    s.stop()


@pytest.fixture(scope='module')
def dns():
    d = DNS('push.test')
    yield d
    d.stop()


@pytest.fixture(scope='module')
def pushing(stack, keys, dns):
    return stack.nginx(name='push', EXTRA=(
        f'resolver 127.0.0.1:{dns.port} ipv6=off valid=1s; '
        f'resolver_timeout 2s; '
        f'chat_push vapid_key={keys["vapid"]} subject=mailto:ops@example.com '
        f'ca={keys["ca"]} window=1s timeout=2s ttl=1h;'))


def subscribe(tenant, nginx, user, browser):
    r = tenant.client(user, nginx=nginx).post('push/subscriptions',
                                              browser.subscription())
    assert r.status == 201, r
    return r.json


def direct(tenant, nginx, text, to='bob'):
    alice = tenant.client('alice', nginx=nginx)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=[to])).json['id']
    r = alice.post(f'conversations/{cid}/messages', {'content': text})
    assert r.status == 201, r
    return cid, r.json['id']


def test_the_key_browsers_subscribe_with(pushing, keys, tenant):
    r = tenant.client('bob', nginx=pushing).get('push/key')
    assert r.status == 200, r
    assert r.json == {'public_key': keys['vapid_public']}
    # without chat_push there is none
    expect_error(tenant.client('bob').get('push/key'), 404, 'chat_push')


def test_subscriptions_are_checked_kept_and_ended(pushing, tenant):
    bob = tenant.client('bob', nginx=pushing)
    good = Browser('https://127.0.0.1:9/sub/kept').subscription()
    for field, value, words in [
            ('endpoint', 'http://127.0.0.1:9/x', 'https://'),
            ('endpoint', 'https://', 'https://'),
            ('p256dh', b64u(os.urandom(65)), 'P-256'),
            ('p256dh', 'not+base64/', 'P-256'),
            ('auth', b64u(os.urandom(15)), '16 bytes'),
            ('auth', 7, 'auth')]:
        expect_error(bob.post('push/subscriptions', dict(good, **{
            field: value})), 400, words)
    for field in good:
        expect_error(bob.post('push/subscriptions', {
            k: v for k, v in good.items() if k != field}), 400, field)
    expect_error(tenant.anonymous(nginx=pushing).post(
        'push/subscriptions', good), 401)

    r = bob.post('push/subscriptions', good)
    assert r.status == 201 and r.json['endpoint'] == good['endpoint'], r
    assert bob.post('push/subscriptions', good).status == 200
    # carol cannot end bob's, and taking the endpoint over moves it
    carol = tenant.client('carol', nginx=pushing)
    query = 'push/subscriptions?endpoint=https%3A%2F%2F127.0.0.1%3A9%2Fsub' \
            '%2Fkept'
    expect_error(carol.delete(query), 404)
    assert bob.delete(query).status == 204
    expect_error(bob.delete(query), 404)
    expect_error(bob.delete('push/subscriptions'), 400, 'endpoint')


def test_a_notification_is_pushed_to_each_browser(pushing, service, dns,
                                                  keys, tenant):
    by_address = Browser(f'https://127.0.0.1:{service.port}/sub/'
                         f'{tenant.name}-a')
    by_name = Browser(f'https://push.test:{service.port}/sub/'
                      f'{tenant.name}-b')
    for b in (by_address, by_name):
        subscribe(tenant, pushing, 'bob', b)
    cid, mid = direct(tenant, pushing, 'hi bob')

    for b, host in ((by_address, '127.0.0.1'), (by_name, 'push.test')):
        path = b.endpoint.split(str(service.port), 1)[1]
        (headers, body), = service.wait(path)
        assert headers['Content-Encoding'] == 'aes128gcm'
        assert headers['Content-Type'] == 'application/octet-stream'
        assert headers['TTL'] == '3600'
        assert headers['Host'] == f'{host}:{service.port}'
        claims = vapid_claims(headers['Authorization'],
                              keys['vapid_public'])
        assert claims['aud'] == f'https://{host}:{service.port}'
        assert claims['sub'] == 'mailto:ops@example.com'
        assert time.time() < claims['exp'] <= time.time() + 24 * 3600
        note = b.decrypt(body)
        assert (note['type'], note['count'], note['reason'],
                note['conversation_id'], note['message_id'],
                note['sender_id'], note['preview']) == \
            ('notification', 1, 'direct', cid, mid, 'alice', 'hi bob')
        assert headers['Topic'] == 'ntf' + note['tag'][4:]
        # another browser's keys cannot read it
        with pytest.raises(Exception):
            Browser(b.endpoint).decrypt(body)
    assert ('push.test', 1) in dns.asked
    time.sleep(1.5)
    assert len(service.to(by_name.endpoint.split(str(service.port))[1])) == 1


def test_a_gone_subscription_is_removed(stack, pushing, service, tenant):
    b = Browser(f'https://127.0.0.1:{service.port}/gone/{tenant.name}')
    subscribe(tenant, pushing, 'bob', b)
    direct(tenant, pushing, 'anyone there?')
    service.wait(f'/gone/{tenant.name}')
    chatstack.wait_for(lambda: stack.query(
        'SELECT count(*) FROM chat.push_subscriptions WHERE tenant_id = %s',
        (tenant.name,))[0][0] == 0, 10, 'the subscription to go')
    # the delivery is done: nothing waits in the outbox
    chatstack.wait_for(lambda: stack.query(
        'SELECT count(*) FROM chat.outbox WHERE tenant_id = %s',
        (tenant.name,))[0][0] == 0, 10, 'the outbox to empty')


def test_a_subscription_that_cannot_be_read_goes_as_a_gone_one(
        stack, pushing, service, tenant):
    # written past chat.api_push_subscribe's checks (by hand here): it can
    # never be pushed to, and must not hold the delivery back for ever
    subscribe(tenant, pushing, 'bob', Browser('https://127.0.0.1:9/x'))
    stack.query("UPDATE chat.push_subscriptions SET p256dh = 'bad' "
                "WHERE tenant_id = %s", (tenant.name,))
    direct(tenant, pushing, 'unreadable')
    chatstack.wait_for(lambda: stack.query(
        'SELECT count(*) FROM chat.push_subscriptions WHERE tenant_id = %s',
        (tenant.name,))[0][0] == 0, 10, 'the row to go')
    chatstack.wait_for(lambda: stack.query(
        'SELECT count(*) FROM chat.outbox WHERE tenant_id = %s',
        (tenant.name,))[0][0] == 0, 10, 'the outbox to empty')


def test_a_failed_push_is_tried_again_under_the_same_topic(stack, pushing,
                                                           service, tenant):
    b = Browser(f'https://127.0.0.1:{service.port}/flaky/{tenant.name}')
    subscribe(tenant, pushing, 'bob', b)
    direct(tenant, pushing, 'again')
    (h1, b1), (h2, b2) = service.wait(f'/flaky/{tenant.name}', 2, 20)
    assert h1['Topic'] == h2['Topic']
    assert b.decrypt(b1)['preview'] == b.decrypt(b2)['preview'] == 'again'
    assert b1 != b2                      # a fresh key and salt each time
    chatstack.wait_for(lambda: stack.query(
        'SELECT count(*) FROM chat.outbox WHERE tenant_id = %s',
        (tenant.name,))[0][0] == 0, 10, 'the outbox to empty')


def test_nothing_is_pushed_to_someone_connected(pushing, service, tenant):
    b = Browser(f'https://127.0.0.1:{service.port}/sub/{tenant.name}-on')
    subscribe(tenant, pushing, 'bob', b)
    c = ChatWS(pushing.port, tenant.token('bob'))
    c.connect()
    c.start()
    try:
        direct(tenant, pushing, 'you are here')
        time.sleep(2.5)
        assert service.to(f'/sub/{tenant.name}-on') == []
    finally:
        c.close()


@pytest.mark.parametrize('args, fault', [
    ('subject=mailto:a@b.c', 'vapid_key='),
    ('vapid_key={vapid}', 'subject='),
    ('vapid_key={vapid} subject=ops@example.com', 'subject='),
    ('vapid_key={rsa} subject=mailto:a@b.c', 'P-256'),
    ('vapid_key={dir}/none.pem subject=mailto:a@b.c', 'none.pem'),
    ('vapid_key={vapid} subject=mailto:a@b.c colour=red', 'unknown'),
])
def test_bad_push_directives_are_refused_by_nginx_t(check_config, keys,
                                                    args, fault):
    args = args.format(vapid=keys['vapid'], rsa=keys['rsa'], dir=keys['dir'])
    out = check_config(EXTRA=f'chat_push {args};')
    assert out.returncode != 0
    assert fault in out.stderr, out.stderr
