"""Webhooks to an https receiver (chat_webhook https://... ca=FILE): the
POST goes after a TLS handshake, only to a receiver whose certificate a
trusted CA signed for the URL's host.

The receiver is t/test_webhooks.py's, behind Python's TLS, with
certificates of a CA made here.  A file of its own: every nginx with a
webhook claims from the one outbox, so none of test_webhooks.py's may run
beside these.
"""

import ssl
import subprocess
import time

import pytest

from test_webhooks import SECRET, Receiver


def openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   capture_output=True)


def make_ca(d, name):
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-nodes', '-keyout', f'{name}.key',
            '-out', f'{name}.pem', '-subj', f'/CN={name}', '-days', '1',
            cwd=d)
    return d / f'{name}.pem'


def make_cert(d, name, ca, san):
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
            '-nodes', '-keyout', f'{name}.key', '-out', f'{name}.csr',
            '-subj', f'/CN={name}', cwd=d)
    (d / f'{name}.ext').write_text(f'subjectAltName={san}\n')
    openssl('x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem',
            '-CAkey', f'{ca}.key', '-CAcreateserial', '-out', f'{name}.pem',
            '-days', '1', '-extfile', f'{name}.ext', cwd=d)
    return d / f'{name}.pem', d / f'{name}.key'


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp('pki')
    return dict(
        ca=make_ca(d, 'ca'), other_ca=make_ca(d, 'other-ca'),
        good=make_cert(d, 'good', 'ca', 'IP:127.0.0.1'),
        stranger=make_cert(d, 'stranger', 'other-ca', 'IP:127.0.0.1'),
        elsewhere=make_cert(d, 'elsewhere', 'ca', 'DNS:chat.example.com'))


class TLSReceiver(Receiver):
    def __init__(self, cert, key):
        super().__init__()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket,
                                             server_side=True)
        # a failed handshake is the test's expectation, not noise
        self.server.handle_error = lambda *args: None


def hooked(stack, name, receiver, ca):
    return stack.nginx(name=name, EXTRA=(
        f'chat_webhook https://127.0.0.1:{receiver.port}/hooks/chat '
        f'secret={SECRET} ca={ca} window=1s timeout=1s max_age=1h;'))


def direct_message(tenant, ng, text):
    alice = tenant.client('alice', nginx=ng)
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['bob'])).json['id']
    r = alice.post(f'conversations/{cid}/messages', {'content': text})
    assert r.status == 201, r
    return cid


def test_a_notification_goes_over_tls_to_a_trusted_receiver(stack, pki,
                                                            tenant):
    receiver = TLSReceiver(*pki['good'])
    ng = hooked(stack, 'hook-tls', receiver, pki['ca'])
    try:
        cid = direct_message(tenant, ng, 'over tls')
        receiver.wait(lambda: receiver.delivered('bob', tenant.name))
        time.sleep(1.5)
        d = receiver.delivered('bob', tenant.name)
        assert len(d) == 1, d
        (bodies,) = d.values()
        assert [(i['conversation_id'], i['preview'])
                for i in bodies[0]['items']] == [(cid, 'over tls')]
        assert not receiver.bad          # each signature checked
    finally:
        ng.stop()
        receiver.stop()


@pytest.mark.parametrize('cert, words', [
    ('stranger', 'is not trusted'),
    ('elsewhere', 'is not for "127.0.0.1"'),
])
def test_an_untrusted_or_misnamed_receiver_gets_nothing(stack, pki, tenant,
                                                         cert, words):
    receiver = TLSReceiver(*pki[cert])
    ng = hooked(stack, f'hook-{cert}', receiver, pki['ca'])
    try:
        direct_message(tenant, ng, 'not for them')
        deadline = time.time() + 10
        while words not in ng.log_text() and time.time() < deadline:
            time.sleep(0.2)
        assert words in ng.log_text()
        assert not receiver.got and not receiver.bad
        # it waits in the outbox for a receiver that can be trusted
        rows = stack.query('SELECT count(*) FROM chat.outbox WHERE '
                           'tenant_id = %s AND user_id = %s',
                           (tenant.name, 'bob'))
        assert rows[0][0] == 1
        assert stack.query('SELECT count(*) FROM chat.outbox_dead WHERE '
                           'tenant_id = %s', (tenant.name,))[0][0] == 0
    finally:
        ng.stop()
        receiver.stop()
        stack.query('DELETE FROM chat.outbox WHERE tenant_id = %s',
                    (tenant.name,))


def test_a_ca_file_that_cannot_be_read_is_refused_by_nginx_t(check_config):
    out = check_config(EXTRA='chat_webhook https://127.0.0.1:9/ secret='
                             + 'k' * 32 + ' ca=/nonexistent/ca.pem;')
    assert out.returncode != 0
    assert '/nonexistent/ca.pem' in out.stderr, out.stderr
