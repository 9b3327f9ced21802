"""WebSocket over TLS: frames leave through nginx's own send_chain, which
packs what a turn of the event loop queued into TLS records and must flush
what it buffered; nothing may stay behind in its buffer, nothing may be
cut or doubled, and the close handshake ends the connection.
"""

import json
import pathlib
import subprocess

import pytest

import chatstack
from wsclient import TEXT, ChatWS

T = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def tls(stack, tmp_path_factory):
    d = tmp_path_factory.mktemp('tls')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-keyout', d / 'tls.key', '-out', d / 'tls.pem'],
                   check=True, capture_output=True)
    port = chatstack.free_port()
    ng = stack.nginx(name='tls', template=T / 'conf/tls.conf',
                     TLS_PORT=port, CERT=d / 'tls.pem', KEY=d / 'tls.key')
    ng.tls_port = port
    return ng


def test_a_burst_of_events_arrives_whole_and_in_order_over_tls(tls, tenant):
    alice = tenant.client('alice', nginx=tls)
    cid = alice.create('group', ['bob'])['id']
    bob = ChatWS(tls.tls_port, tenant.token('bob'), tls=True)
    bob.connect()
    bob.start()

    # small frames many at a time, and some larger than a TLS record
    sizes = [10] * 150 + [15000] * 10 + [10] * 40
    for i, n in enumerate(sizes):
        r = alice.post(f'conversations/{cid}/messages',
                       {'content': f'{i}:' + 'x' * n})
        assert r.status == 201, r
    bob.until(lambda: len(bob.seqs(cid)) == len(sizes), 30, 'every message')
    assert bob.seqs(cid) == list(range(1, len(sizes) + 1))
    got = [m['message']['content'] for m in bob.events(cid)]
    assert got == [f'{i}:' + 'x' * n for i, n in enumerate(sizes)]

    # an answer that is alone in its turn is not held in TLS's buffer
    assert bob.request('ping', timeout=3)['type'] == 'pong'
    bob.close()


def test_over_tls_a_protocol_error_closes_and_the_server_still_serves(
        tls, tenant):
    c = ChatWS(tls.tls_port, tenant.token('alice'), tls=True)
    c.connect()
    c.send_frame(TEXT, json.dumps({'type': 'ping'}), mask=False)
    assert c.wait_closed(5) == 1002
    c.sock.close()
    d = ChatWS(tls.tls_port, tenant.token('alice'), tls=True)
    d.connect()
    assert d.request('ping')['type'] == 'pong'
    d.close()
