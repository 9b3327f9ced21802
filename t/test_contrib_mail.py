"""contrib/webhook-mail: the example receiver that turns notifications
into mail, between a real nginx and a real (local) SMTP server: one mail
a notification, to the address of the user, once, also when the mail
server was away for a while; a forged POST sends nothing.
"""

import base64
import email
import http.client
import os
import socket
import subprocess
import threading
import time

import pytest

import chatstack
from conftest import Tenant

RECEIVER = chatstack.REPO / 'contrib' / 'webhook-mail' / 'receiver.py'
KEY = os.urandom(32)
SECRET = 'whsec_' + base64.b64encode(KEY).decode()


class SMTPSink:
    """Enough of SMTP (RFC 5321) to take mail: keeps what it was given."""

    def __init__(self):
        self.mails = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.up = False

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', self.port))
        self.sock.listen()
        self.up = True
        threading.Thread(target=self.serve, daemon=True).start()

    def stop(self):
        self.up = False
        try:
            # wakes the accept() under way: the port stops listening now
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def serve(self):
        while self.up:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,),
                             daemon=True).start()

    def session(self, conn):
        f = conn.makefile('rwb')

        def say(line):
            f.write(line.encode() + b'\r\n')
            f.flush()

        say('220 sink ESMTP')
        rcpt, data = [], None
        for raw in f:
            line = raw.decode().rstrip('\r\n')
            verb = line[:4].upper()
            if verb in ('EHLO', 'HELO'):
                say('250 sink')
            elif verb == 'MAIL':
                rcpt = []
                say('250 ok')
            elif verb == 'RCPT':
                rcpt.append(line.split(':', 1)[1].strip(' <>'))
                say('250 ok')
            elif verb == 'DATA':
                say('354 go on')
                data = []
                for d in f:
                    if d == b'.\r\n':
                        break
                    data.append(d)
                self.mails.append((rcpt, email.message_from_bytes(
                    b''.join(data))))
                say('250 kept')
            elif verb == 'QUIT':
                say('221 bye')
                break
            else:
                say('250 ok')
        conn.close()


@pytest.fixture(scope='module')
def sink():
    s = SMTPSink()
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope='module')
def receiver(sink):
    port = chatstack.free_port()
    p = subprocess.Popen(
        ['/usr/bin/python3', RECEIVER, '--listen', f'127.0.0.1:{port}',
         '--secret', SECRET, '--smtp', f'127.0.0.1:{sink.port}',
         '--from', 'chat@example.test', '--to', '{user_id}@example.test',
         '--url', 'https://chat.example.test'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chatstack.wait_for(lambda: chatstack.port_open(port), 10,
                       'the receiver to listen')
    yield port
    p.terminate()
    p.wait(5)


@pytest.fixture(scope='module')
def mailing(stack, receiver):
    return stack.nginx(name='mail', EXTRA=(
        f'chat_webhook http://127.0.0.1:{receiver}/ secret={SECRET} '
        f'window=1s timeout=5s;'))


def mails_to(sink, address):
    return [m for rcpt, m in sink.mails if address in rcpt]


def send_direct(stack, ng, text, to='bob'):
    tenant = Tenant(stack, ng)
    alice = tenant.client('alice')
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=[to])).json['id']
    assert alice.post(f'conversations/{cid}/messages',
                      {'content': text}).status == 201
    return tenant, cid


def test_one_mail_a_notification(stack, mailing, sink):
    before = len(mails_to(sink, 'bob@example.test'))
    _, cid = send_direct(stack, mailing, 'lunch at noon?')
    chatstack.wait_for(lambda: len(mails_to(sink, 'bob@example.test'))
                       > before, 15, 'the mail')
    time.sleep(1.5)
    (m,) = mails_to(sink, 'bob@example.test')[before:]
    assert m['From'] == 'chat@example.test'
    assert m['Subject'] == 'New message from alice in a direct conversation'
    body = m.get_payload()
    assert 'alice: lunch at noon?' in body
    assert f'https://chat.example.test/#conversation={cid}' in body


def test_while_the_mail_server_is_away_it_waits(stack, mailing, sink):
    before = len(mails_to(sink, 'carol@example.test'))
    sink.stop()
    try:
        send_direct(stack, mailing, 'are you there?', to='carol')
        time.sleep(3)           # delivered and refused: 503, kept
        assert len(mails_to(sink, 'carol@example.test')) == before
    finally:
        sink.start()
    chatstack.wait_for(lambda: len(mails_to(sink, 'carol@example.test'))
                       == before + 1, 30, 'the mail after the retry')
    time.sleep(1.5)
    assert len(mails_to(sink, 'carol@example.test')) == before + 1


def test_a_forged_post_sends_nothing(receiver, sink):
    before = len(sink.mails)
    c = http.client.HTTPConnection('127.0.0.1', receiver, timeout=5)
    body = (b'{"type":"notification","tenant_id":"t","user_id":"x",'
            b'"count":1,"items":[{"sender_id":"a","preview":"p",'
            b'"conversation_id":1}]}')
    c.request('POST', '/', body, {
        'webhook-id': 'ntf_1', 'webhook-timestamp': str(int(time.time())),
        'webhook-signature': 'v1,' + base64.b64encode(b'x' * 32).decode(),
        'Content-Type': 'application/json'})
    assert c.getresponse().status == 401
    c.close()
    time.sleep(0.5)
    assert len(sink.mails) == before
