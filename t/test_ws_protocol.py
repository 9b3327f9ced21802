"""The WebSocket endpoint as RFC 6455 has it (API.md section 5): the
handshake and its refusals, then frames as a hand-written client sends
them, malformed on purpose.  The Autobahn suite cannot run here; these
stand in for it.

Limits are tested on nginx instances of this module's own (message size
20k and an Origin allow-list; a fast heartbeat and idle timeout); the rest
runs on the shared nginx.  After every test a fresh connection must still
be served (the autouse fixture).

Where the contract is silent, these hold what the module does: the Origin
is checked before the token (403 before 401), a binary frame inside a
fragmented text message closes with 1003 or 1002, the idle timeout closes
with 1001, an empty close frame is answered with an empty one.
"""

import datetime
import json
import re
import socket
import struct
import time

import pytest

from wsclient import (BINARY, CLOSE, CONT, PING, PONG, TEXT, ChatWS,
                      HandshakeRefused, close_payload, frame_bytes)

ORIGINS = ('https://app.example.com', 'http://localhost:3000')
WS_MAX = 20 * 1024
TIMESTAMP = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')


@pytest.fixture(scope='module')
def tuned(stack):
    """An nginx with a 20k message limit and an Origin allow-list."""
    return stack.nginx(name='ws-proto',
                       EXTRA='chat_message_max 10k; chat_ws_message_max 20k;',
                       WS_EXTRA='chat_ws_origins ' + ' '.join(ORIGINS) + ';')


@pytest.fixture(scope='module')
def heartbeat(stack):
    """An nginx that pings every 300 ms and drops a client silent for 1 s."""
    return stack.nginx(name='ws-heartbeat',
                       EXTRA='chat_ws_ping 300ms; chat_ws_timeout 1s;')


@pytest.fixture(autouse=True)
def still_serving(request, stack, tenant):
    """Whatever a test sent, the server serves a new connection after it."""
    yield
    nginxes = [stack.main]
    if 'tuned' in request.fixturenames:
        nginxes.append(request.getfixturevalue('tuned'))
    for ng in nginxes:
        c = ChatWS(ng.port, tenant.token('after')).connect()
        assert c.request('ping')['type'] == 'pong'
        c.close()


def ws(nginx, tenant, user='alice', **kw):
    return ChatWS(nginx.port, tenant.token(user), **kw)


def refused(client):
    with pytest.raises(HandshakeRefused) as e:
        client.connect()
    return e.value


def error_body(refusal, code):
    assert refusal.headers.get('content-type', '').startswith(
        'application/json'), refusal.headers
    body = json.loads(refusal.body)
    assert set(body) == {'error'}, body
    assert body['error']['code'] == code, body
    assert isinstance(body['error']['message'], str) and \
        body['error']['message'], body
    return body['error']['message']


def raw_handshake(nginx, headers, method='GET', path='/ws/chat',
                  version='HTTP/1.1'):
    """Sends a handshake of exactly these headers; (status, headers, body)."""
    s = socket.create_connection(('127.0.0.1', nginx.port), timeout=10)
    try:
        lines = [f'{method} {path} {version}',
                 f'Host: 127.0.0.1:{nginx.port}']
        lines += [f'{k}: {v}' for k, v in headers.items()]
        s.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b'\r\n\r\n')
        status_line, *rest = head.decode('latin-1').split('\r\n')
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (line.split(':', 1) for line in rest if ':' in line)}
        length = int(hdrs.get('content-length', 0))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(status_line.split()[1]), hdrs, body.decode(errors='replace')
    finally:
        s.close()


def good_headers(token=None):
    h = {'Upgrade': 'websocket', 'Connection': 'Upgrade',
         'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
         'Sec-WebSocket-Version': '13'}
    if token:
        h['Authorization'] = f'Bearer {token}'
    return h


def closed_with(client, code, timeout=5):
    """The server closes with code, then ends the TCP connection."""
    assert client.wait_closed(timeout) == code, (client.closed, client.log)
    # the client answers the close; the server then closes TCP
    try:
        client.send_frame(CLOSE, close_payload(code))
    except OSError:
        pass
    assert client.tcp_closed(5)


def pong_for(client, req, timeout=5):
    return client.wait(lambda m: m.get('req') == req, timeout, 'pong')


# the handshake

def test_hello_comes_first_with_user_tenant_and_server_time(stack, tenant):
    c = ws(stack.main, tenant, 'alice', hello=False).connect()
    hello = c.recv()
    assert hello['type'] == 'hello'
    assert hello['user_id'] == 'alice'
    assert hello['tenant'] == tenant.name
    assert TIMESTAMP.match(hello['server_time']), hello
    t = datetime.datetime.strptime(hello['server_time'],
                                   '%Y-%m-%dT%H:%M:%S.%fZ')
    now = datetime.datetime.utcnow()
    assert abs((now - t).total_seconds()) < 5
    c.close()


def test_token_in_authorization_header_is_accepted(stack, tenant):
    c = ws(stack.main, tenant, 'alice').connect()
    assert c.hello['user_id'] == 'alice'
    assert 'sec-websocket-protocol' not in c.response_headers
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_token_in_access_token_query_is_accepted(stack, tenant):
    c = ChatWS(stack.main.port, None,
               query=f'access_token={tenant.token("bob")}').connect()
    assert c.hello['user_id'] == 'bob'
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_token_as_subprotocol_answers_chat_v1_and_never_the_token(stack,
                                                                  tenant):
    token = tenant.token('carol')
    c = ChatWS(stack.main.port, None,
               protocols=['chat.v1', f'bearer.{token}']).connect()
    assert c.hello['user_id'] == 'carol'
    assert c.response_headers['sec-websocket-protocol'] == 'chat.v1'
    assert c.status_line.startswith('HTTP/1.1 101')
    for k, v in c.response_headers.items():
        assert token not in v and 'bearer' not in v.lower(), (k, v)
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_subprotocol_token_may_come_first_and_without_spaces(stack, tenant):
    token = tenant.token('carol')
    c = ChatWS(stack.main.port, None,
               headers={'Sec-WebSocket-Protocol':
                        f'bearer.{token},chat.v1'}).connect()
    assert c.hello['user_id'] == 'carol'
    assert c.response_headers['sec-websocket-protocol'] == 'chat.v1'
    c.close()


def test_no_token_is_refused_401_json(stack):
    r = refused(ChatWS(stack.main.port, None))
    assert r.status == 401
    error_body(r, 'unauthorized')
    assert r.headers['www-authenticate'].startswith('Bearer')


@pytest.mark.parametrize('how', ['header', 'query', 'subprotocol'])
def test_invalid_token_is_refused_401_json(stack, tenant, how):
    bad = tenant.token('alice')[:-4] + 'AAAA'
    kw = {'header': dict(token=bad),
          'query': dict(query=f'access_token={bad}'),
          'subprotocol': dict(protocols=['chat.v1', f'bearer.{bad}'])}[how]
    r = refused(ChatWS(stack.main.port, **kw))
    assert r.status == 401
    error_body(r, 'unauthorized')


def test_expired_token_is_refused_401_json(stack, tenant):
    r = refused(ChatWS(stack.main.port, tenant.token('alice', ttl=-3600)))
    assert r.status == 401
    error_body(r, 'unauthorized')


def test_token_signed_with_another_key_is_refused(stack, tenant):
    from chatclient import Tokens
    forged = Tokens('not the key').make('alice', tenant=tenant.name)
    r = refused(ChatWS(stack.main.port, forged))
    assert r.status == 401


def test_origin_not_in_the_allow_list_is_refused_403(tuned, tenant):
    for origin in ('https://evil.example.com', 'https://app.example.com.evil',
                   'http://app.example.com', 'null'):
        r = refused(ws(tuned, tenant, headers={'Origin': origin}))
        assert r.status == 403, origin
        error_body(r, 'forbidden')


def test_origin_is_checked_before_the_token(tuned):
    r = refused(ChatWS(tuned.port, None,
                       headers={'Origin': 'https://evil.example.com'}))
    assert r.status == 403


def test_allowed_origin_and_no_origin_are_let_in(tuned, tenant):
    for origin in ORIGINS + (ORIGINS[0].upper(),):
        c = ws(tuned, tenant, headers={'Origin': origin}).connect()
        assert c.request('ping')['type'] == 'pong'
        c.close()
    c = ws(tuned, tenant).connect()
    assert 'Origin' not in c.extra
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_without_an_allow_list_any_origin_is_let_in(stack, tenant):
    c = ws(stack.main, tenant,
           headers={'Origin': 'https://anywhere.example.org'}).connect()
    assert c.request('ping')['type'] == 'pong'
    c.close()


@pytest.mark.parametrize('version', ['8', '12', '14', '', '13, 8'])
def test_wrong_websocket_version_is_426_naming_13(stack, tenant, version):
    h = good_headers(tenant.token('alice'))
    h['Sec-WebSocket-Version'] = version
    status, hdrs, body = raw_handshake(stack.main, h)
    assert status == 426, body
    assert hdrs['sec-websocket-version'] == '13'


def test_426_has_its_reason_phrase(stack, tenant):
    h = good_headers(tenant.token('alice'))
    h['Sec-WebSocket-Version'] = '8'
    s = socket.create_connection(('127.0.0.1', stack.main.port), timeout=10)
    try:
        s.sendall(('GET /ws/chat HTTP/1.1\r\nHost: x\r\n' + ''.join(
            f'{k}: {v}\r\n' for k, v in h.items()) + '\r\n').encode())
        line = s.recv(65536).split(b'\r\n')[0]
    finally:
        s.close()
    assert line == b'HTTP/1.1 426 Upgrade Required'


def test_missing_websocket_version_is_426(stack, tenant):
    h = good_headers(tenant.token('alice'))
    del h['Sec-WebSocket-Version']
    status, hdrs, _ = raw_handshake(stack.main, h)
    assert status == 426
    assert hdrs['sec-websocket-version'] == '13'


@pytest.mark.parametrize('key', [
    None,                                   # missing
    '',                                     # empty
    'dGhlIHNhbXBsZSBub25jZQ',               # no padding (22 chars)
    'dGhlIHNhbXBsZSBub25jZQ===',            # 25 chars
    'dGhlIHNhbXBsZSBub25j',                 # 15 bytes
    'dGhlIHNhbXBsZSBub25jZSEh',             # 18 bytes, 24 chars
    '!!!!!!!!!!!!!!!!!!!!!!==',             # not base64
])
def test_bad_websocket_key_is_400(stack, tenant, key):
    h = good_headers(tenant.token('alice'))
    if key is None:
        del h['Sec-WebSocket-Key']
    else:
        h['Sec-WebSocket-Key'] = key
    status, hdrs, body = raw_handshake(stack.main, h)
    assert status == 400, (key, body)
    assert json.loads(body)['error']['code'] == 'bad_request'


def test_post_is_405_allowing_get(stack, tenant):
    status, hdrs, body = raw_handshake(
        stack.main, dict(good_headers(tenant.token('alice')),
                         **{'Content-Length': '0'}), method='POST')
    assert status == 405, body
    assert hdrs['allow'] == 'GET'


@pytest.mark.parametrize('drop', ['Upgrade', 'Connection'])
def test_missing_upgrade_or_connection_is_400(stack, tenant, drop):
    h = good_headers(tenant.token('alice'))
    del h[drop]
    status, _, body = raw_handshake(stack.main, h)
    assert status == 400, body
    assert json.loads(body)['error']['code'] == 'bad_request'


@pytest.mark.parametrize('header,value', [('Upgrade', 'h2c'),
                                          ('Connection', 'keep-alive'),
                                          ('Connection', 'upgraded')])
def test_wrong_upgrade_or_connection_is_400(stack, tenant, header, value):
    h = good_headers(tenant.token('alice'))
    h[header] = value
    status, _, body = raw_handshake(stack.main, h)
    assert status == 400, body


def test_http_1_0_handshake_is_400(stack, tenant):
    status, _, _ = raw_handshake(stack.main, good_headers(
        tenant.token('alice')), version='HTTP/1.0')
    assert status == 400


def test_header_tokens_are_matched_in_lists_and_any_case(stack, tenant):
    # what Firefox sends, in any case
    c = ws(stack.main, tenant, headers={
        'Connection': 'keep-alive, Upgrade', 'Upgrade': 'WebSocket'}).connect()
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_101_carries_no_content_length(stack, tenant):
    c = ws(stack.main, tenant).connect()
    assert 'content-length' not in c.response_headers
    assert c.response_headers['upgrade'].lower() == 'websocket'
    assert c.response_headers['connection'].lower() == 'upgrade'
    assert 'sec-websocket-extensions' not in c.response_headers
    c.close()


def test_101_goes_through_nginx_header_filters(stack, tenant):
    # add_header ... always reaches a 101 only if nginx itself sends it
    ng = stack.nginx(name='ws-headers',
                     WS_EXTRA='add_header X-Chat-Frontend edge-1 always;')
    try:
        c = ws(ng, tenant).connect()
        assert c.response_headers.get('x-chat-frontend') == 'edge-1', \
            c.response_headers
        assert c.response_headers.get('server', '').startswith('nginx')
        assert 'date' in c.response_headers
        assert c.request('ping')['type'] == 'pong'
        c.close()
        # and the access log has the handshake, with its status
        log = (ng.prefix / 'logs/access.log').read_text()
        assert re.search(r'"GET /ws/chat HTTP/1.1" 101 ', log), log
    finally:
        ng.stop()


def test_permessage_deflate_is_not_negotiated(stack, tenant):
    c = ws(stack.main, tenant, headers={
        'Sec-WebSocket-Extensions': 'permessage-deflate; '
                                    'client_max_window_bits'}).connect()
    assert 'sec-websocket-extensions' not in c.response_headers
    assert c.request('ping')['type'] == 'pong'
    c.close()


# frames the server refuses

def test_unmasked_client_frame_is_closed_1002(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, json.dumps({'type': 'ping'}), mask=False)
    closed_with(c, 1002)


def test_invalid_utf8_text_is_closed_1007(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'{"type":"ping","req":"\xc3\x28"}')
    closed_with(c, 1007)


@pytest.mark.parametrize('payload', [
    b'\xed\xa0\x80',            # a surrogate
    b'\xc0\xaf',                # overlong
    b'\xf4\x90\x80\x80',        # above U+10FFFF
    b'\xff',
])
def test_invalid_utf8_forms_are_closed_1007(stack, tenant, payload):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'"' + payload + b'"')
    closed_with(c, 1007)


def test_invalid_utf8_in_a_later_fragment_is_closed_1007(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'{"type":"ping","req":"', fin=False)
    c.send_frame(CONT, b'ok', fin=False)
    c.send_frame(CONT, b'\xff"}')
    closed_with(c, 1007)


def test_character_cut_between_fragments_then_broken_is_closed_1007(
        stack, tenant):
    c = ws(stack.main, tenant).connect()
    # the first two bytes of a three-byte character, then a bad third
    c.send_frame(TEXT, b'{"type":"ping","req":"\xe2\x82', fin=False)
    c.send_frame(CONT, b'\x28"}')
    closed_with(c, 1007)


def test_text_ending_inside_a_character_is_closed_1007(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'{"type":"ping","req":"\xe2\x82', fin=False)
    c.send_frame(CONT, b'')
    closed_with(c, 1007)


def test_character_cut_between_fragments_is_valid(stack, tenant):
    c = ws(stack.main, tenant).connect()
    euro = '\u20ac'.encode()
    c.send_frame(TEXT, b'{"type":"ping","req":"' + euro[:1], fin=False)
    c.send_frame(CONT, euro[1:2], fin=False)
    c.send_frame(CONT, euro[2:] + b'"}')
    assert pong_for(c, '\u20ac')['type'] == 'pong'
    c.close()


@pytest.mark.parametrize('opcode', [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xF])
def test_reserved_opcode_is_closed_1002(stack, tenant, opcode):
    c = ws(stack.main, tenant).connect()
    c.send_frame(opcode, b'x')
    closed_with(c, 1002)


@pytest.mark.parametrize('rsv', [1, 2, 4, 7])
def test_reserved_bits_are_closed_1002(stack, tenant, rsv):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, json.dumps({'type': 'ping'}), rsv=rsv)
    closed_with(c, 1002)


@pytest.mark.parametrize('opcode', [PING, PONG, CLOSE])
def test_fragmented_control_frame_is_closed_1002(stack, tenant, opcode):
    c = ws(stack.main, tenant).connect()
    c.send_frame(opcode, b'', fin=False)
    closed_with(c, 1002)


@pytest.mark.parametrize('opcode', [PING, PONG, CLOSE])
def test_control_frame_of_126_bytes_is_closed_1002(stack, tenant, opcode):
    c = ws(stack.main, tenant).connect()
    payload = close_payload(1000, 'x' * 124) if opcode == CLOSE else b'p' * 126
    c.send_frame(opcode, payload)
    closed_with(c, 1002)


def test_control_frame_of_125_bytes_is_answered(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(PING, b'p' * 125)
    assert c.recv_frame(5) == (True, PONG, b'p' * 125)
    c.close()


def test_message_over_the_maximum_in_one_frame_is_closed_1009(tuned, tenant):
    c = ws(tuned, tenant).connect()
    c.send_frame(TEXT, b'a' * (WS_MAX + 1))
    closed_with(c, 1009)


def test_message_over_the_maximum_in_fragments_is_closed_1009(tuned, tenant):
    c = ws(tuned, tenant).connect()
    c.send_frame(TEXT, b'a' * (WS_MAX // 2), fin=False)
    c.send_frame(CONT, b'a' * (WS_MAX // 2), fin=False)
    c.send_frame(CONT, b'a')
    closed_with(c, 1009)


def test_announced_length_over_the_maximum_is_closed_before_the_payload(
        tuned, tenant):
    c = ws(tuned, tenant).connect()
    # only the header: the server need not wait for 2^40 bytes
    c.send_raw(bytes([0x81, 0xFF]) + struct.pack('!Q', 1 << 40) + b'abcd')
    closed_with(c, 1009)


def test_message_of_exactly_the_maximum_is_answered(tuned, tenant):
    c = ws(tuned, tenant).connect()
    head = '{"type":"ping","req":"max","pad":"'
    msg = head + 'a' * (WS_MAX - len(head) - 2) + '"}'
    assert len(msg.encode()) == WS_MAX
    c.send_frame(TEXT, msg)
    # answered (pong, or an error about the unknown field), not closed
    assert pong_for(c, 'max')['type'] in ('pong', 'error')
    # and in fragments
    c.send_frame(TEXT, msg[:WS_MAX // 2], fin=False)
    c.send_frame(CONT, msg[WS_MAX // 2:])
    assert pong_for(c, 'max')['type'] in ('pong', 'error')
    assert c.closed is None
    c.close()


@pytest.mark.parametrize('n,form', [(5, 16), (125, 16), (5, 64),
                                    (65535, 64), (200, 64)])
def test_length_not_in_its_shortest_form_is_closed_1002(stack, tenant, n,
                                                        form):
    c = ws(stack.main, tenant).connect()
    c.send_raw(frame_bytes(TEXT, b' ' * n, length_form=form))
    closed_with(c, 1002)


def test_64_bit_length_with_the_top_bit_set_is_closed(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_raw(bytes([0x81, 0xFF]) + struct.pack('!Q', 1 << 63) + b'abcd')
    assert c.wait_closed(5) == 1002


def test_continuation_without_a_start_is_closed_1002(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CONT, b'{"type":"ping"}')
    closed_with(c, 1002)


def test_new_text_frame_inside_a_fragmented_message_is_closed_1002(stack,
                                                                  tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'{"type":', fin=False)
    c.send_frame(TEXT, b'{"type":"ping"}')
    closed_with(c, 1002)


@pytest.mark.parametrize('fragmented', [False, True])
def test_binary_frame_is_closed_1003(stack, tenant, fragmented):
    c = ws(stack.main, tenant).connect()
    c.send_frame(BINARY, b'\x00\x01\x02', fin=not fragmented)
    closed_with(c, 1003)


def test_binary_continuation_inside_a_text_message_is_closed_1002(stack,
                                                                 tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'{"type":', fin=False)
    c.send_frame(BINARY, b'"ping"}')
    assert c.wait_closed(5) in (1002, 1003)


# frames the server answers

def test_fragmented_text_is_reassembled_and_answered(stack, tenant):
    c = ws(stack.main, tenant).connect()
    msg = json.dumps({'type': 'ping', 'req': 'frag'}).encode()
    c.send_frame(TEXT, msg[:3], fin=False)
    c.send_frame(CONT, b'', fin=False)
    c.send_frame(CONT, msg[3:9], fin=False)
    c.send_frame(CONT, msg[9:])
    assert pong_for(c, 'frag')['type'] == 'pong'
    c.close()


def test_frames_arriving_a_few_bytes_at_a_time_are_whole(stack, tenant):
    # a long frame then a short one, cut into pieces that split headers,
    # and the short one's header behind the long one's last bytes
    c = ws(stack.main, tenant).connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    padded = '{"type": "ping", "req": "long"' + ' ' * 3000 + '}'
    data = (frame_bytes(TEXT, padded)
            + frame_bytes(TEXT, json.dumps({'type': 'ping', 'req': 's'})))
    for i in range(0, len(data), 7):
        c.send_raw(data[i:i + 7])
        if i % 700 == 0:
            time.sleep(0.002)
    pong_for(c, 's')
    assert [m.get('req') for m in c.log if m['type'] == 'pong'] == ['long',
                                                                    's']
    c.close()


def test_thousands_of_fragments_make_one_message(stack, tenant):
    c = ws(stack.main, tenant).connect()
    msg = ('{"type": "ping", "req": "frags"' + ' ' * 20000 + '}').encode()
    pieces = [msg[i:i + 4] for i in range(0, len(msg), 4)]
    data = frame_bytes(TEXT, pieces[0], fin=False)
    for piece in pieces[1:-1]:
        data += frame_bytes(CONT, piece, fin=False)
    data += frame_bytes(CONT, pieces[-1])
    c.send_raw(data)
    assert pong_for(c, 'frags')['type'] == 'pong'
    c.close()


def test_many_small_fragments_are_reassembled(stack, tenant):
    c = ws(stack.main, tenant).connect()
    msg = json.dumps({'type': 'ping', 'req': 'x' * 100}).encode()
    c.send_frame(TEXT, msg[:1], fin=False)
    for b in msg[1:-1]:
        c.send_frame(CONT, bytes([b]), fin=False)
    c.send_frame(CONT, msg[-1:])
    assert pong_for(c, 'x' * 100)['type'] == 'pong'
    c.close()


@pytest.mark.parametrize('payload', [b'', b'hello', bytes(range(125))])
def test_ping_is_echoed_as_pong_with_the_same_payload(stack, tenant,
                                                      payload):
    c = ws(stack.main, tenant).connect()
    c.send_frame(PING, payload)
    assert c.recv_frame(5) == (True, PONG, payload)
    c.close()


def test_ping_between_fragments_is_answered_and_the_message_too(stack,
                                                               tenant):
    c = ws(stack.main, tenant).connect()
    msg = json.dumps({'type': 'ping', 'req': 'inter'}).encode()
    c.send_frame(TEXT, msg[:5], fin=False)
    c.send_frame(PING, b'between')
    assert c.recv_frame(5) == (True, PONG, b'between')
    c.send_frame(CONT, msg[5:10], fin=False)
    c.send_frame(PONG, b'unsolicited')
    c.send_frame(CONT, msg[10:])
    assert pong_for(c, 'inter')['type'] == 'pong'
    c.close()


def test_unsolicited_pong_is_ignored(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(PONG, b'whatever')
    assert c.request('ping')['type'] == 'pong'
    c.close()


@pytest.mark.parametrize('code,reason', [(1000, b'bye'), (1001, b''),
                                         (1011, b''), (1012, b'restart'),
                                         (1013, b''), (1014, b''),
                                         (3000, b'app'),
                                         (4999, '\u00e9t\u00e9'.encode())])
def test_close_is_echoed_with_its_code_then_tcp_is_closed(stack, tenant,
                                                          code, reason):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CLOSE, close_payload(code, reason))
    fin, op, payload = c.recv_frame(5)
    assert op == CLOSE
    assert struct.unpack('!H', payload[:2])[0] == code
    assert c.tcp_closed(5)


def test_empty_close_is_answered_and_tcp_is_closed(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CLOSE, b'')
    fin, op, payload = c.recv_frame(5)
    assert op == CLOSE and len(payload) in (0, 2)
    if payload:
        assert struct.unpack('!H', payload)[0] == 1000
    assert c.tcp_closed(5)


def test_nothing_is_answered_after_the_close(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_raw(frame_bytes(CLOSE, close_payload(1000)) +
               frame_bytes(TEXT, json.dumps({'type': 'ping', 'req': 'late'})) +
               frame_bytes(PING, b'late'))
    frames = []
    try:
        while True:
            frames.append(c.recv_frame(3))
    except Exception:
        pass
    assert [f[1] for f in frames] == [CLOSE], frames
    assert c.tcp_closed(5)


@pytest.mark.parametrize('code', [0, 999, 1004, 1005, 1006, 1015, 1016, 2000,
                                  2999, 5000, 65535])
def test_close_with_an_invalid_code_is_closed_1002(stack, tenant, code):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CLOSE, close_payload(code))
    closed_with(c, 1002)


def test_close_with_a_one_byte_payload_is_closed_1002(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CLOSE, b'\x03')
    closed_with(c, 1002)


def test_close_with_invalid_utf8_reason_is_closed_1007(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(CLOSE, close_payload(1000, b'\xce\xba\xe1\xbd\xb9\xff'))
    closed_with(c, 1007)


def test_server_close_frames_are_well_formed(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_frame(TEXT, b'\xff')
    fin, op, payload = c.recv_frame(5)
    assert fin and op == CLOSE
    assert 2 <= len(payload) <= 125
    assert struct.unpack('!H', payload[:2])[0] == 1007
    payload[2:].decode('utf-8')   # the reason is UTF-8


def test_join_before_the_memberships_are_loaded_is_answered_from_them(
        stack, tenant):
    # sent with the handshake, join and leave come before the server knows
    # the user's conversations: the answers wait for them
    alice = tenant.client('alice')
    r = alice.post('conversations', {'type': 'group', 'member_ids': ['bob']})
    assert r.status == 201, r
    theirs = r.json['id']
    r = alice.post('conversations', {'type': 'group'})
    assert r.status == 201, r
    not_theirs = r.json['id']
    tail = b''.join(frame_bytes(TEXT, json.dumps(m)) for m in [
        {'type': 'join', 'req': 'j1', 'conversation_id': theirs},
        {'type': 'join', 'req': 'j2', 'conversation_id': not_theirs},
        {'type': 'leave', 'req': 'l1', 'conversation_id': theirs}])
    c = ws(stack.main, tenant, 'bob', tail=tail).connect()
    # they run side by side: the answers may come in any order
    c.until(lambda: len([m for m in c.log if 'req' in m]) == 3, 5,
            'the three answers')
    answers = {m['req']: m for m in c.log if 'req' in m}
    assert answers['j1']['type'] == 'ack', answers
    assert answers['j2']['type'] == 'error', answers
    assert answers['j2']['error']['code'] == 'not_found', answers
    assert answers['l1']['type'] == 'ack', answers
    c.close()


def test_resumes_waiting_for_the_memberships_are_capped(stack, tenant):
    # sent with the handshake, they all wait for the memberships; past 16
    # each is refused at once and the connection goes on
    n = 20
    tail = b''.join(frame_bytes(TEXT, json.dumps(
        dict(type='resume', req=f'q{i}', conversations={})))
        for i in range(n))
    c = ws(stack.main, tenant, 'bob', tail=tail).connect()
    c.until(lambda: len([m for m in c.log if 'req' in m]) == n, 10,
            'every answer')
    answers = {m['req']: m for m in c.log if 'req' in m}
    refused = sorted(int(r[1:]) for r, m in answers.items()
                     if m['type'] == 'error')
    assert refused == list(range(16, n)), answers
    for r in refused:
        err = answers[f'q{r}']['error']
        assert err['code'] == 'rate_limited' and err['message'], err
    assert all(answers[f'q{i}']['type'] == 'resumed' for i in range(16))
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_requests_waiting_for_an_answer_are_capped_at_64(stack, tenant,
                                                         side_db):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    c = ws(stack.main, tenant, 'bob').connect()
    c.start()
    # the conversation's row is locked: every send waits for it
    db = side_db()
    with db.cursor() as cur:
        cur.execute('SELECT 1 FROM chat.conversations WHERE id = %s '
                    'FOR UPDATE', (cid,))
    try:
        for i in range(70):
            c.send_json({'type': 'send_message', 'req': f's{i}',
                         'conversation_id': cid, 'content': f'm{i}'})
        c.until(lambda: len([m for m in c.log if m.get('type') == 'error'])
                == 6, 3, 'the refusals')
        refused = [m for m in c.log if m.get('type') == 'error']
        assert [m['req'] for m in refused] == [f's{i}' for i in
                                               range(64, 70)], refused
        assert all(m['error']['code'] == 'rate_limited' for m in refused)
    finally:
        db.rollback()
    c.until(lambda: len([m for m in c.log if m.get('type') == 'ack']) == 64,
            10, 'the acks')
    c.close()


def test_hello_names_the_longest_ids_whatever_they_hold(stack, tenant):
    user = '"\\' * 64
    name = 'q"' * 64
    c = ChatWS(stack.main.port,
               stack.tokens.make(user, tenant=name), hello=False).connect()
    hello = c.recv(5)
    assert hello['type'] == 'hello', hello
    assert hello['user_id'] == user and hello['tenant'] == name, hello
    c.close()


def test_bytes_behind_the_handshake_in_the_same_packet_are_processed(
        stack, tenant):
    tail = (frame_bytes(PING, b'early') +
            frame_bytes(TEXT, json.dumps({'type': 'ping', 'req': 'early'})))
    c = ws(stack.main, tenant, tail=tail).connect()
    try:
        assert c.recv_frame(1.5) == (True, PONG, b'early')
        assert pong_for(c, 'early', 1.5)['type'] == 'pong'
    finally:
        c.close()


def test_a_long_tail_behind_the_handshake_is_processed_in_order(stack,
                                                               tenant):
    # more than nginx's 1k header buffer: part of it is read later
    msg = json.dumps({'type': 'ping', 'req': 'y' * 120}).encode()
    tail = frame_bytes(TEXT, msg[:10], fin=False)
    for i in range(10, len(msg) - 3, 3):
        tail += frame_bytes(CONT, msg[i:i + 3], fin=False)
        tail += frame_bytes(PING, b'%d' % i)
        last = i + 3
    tail += frame_bytes(CONT, msg[last:])
    tail += b''.join(frame_bytes(TEXT, json.dumps(
        {'type': 'ping', 'req': n})) for n in range(40))
    assert len(tail) > 1500
    c = ws(stack.main, tenant, tail=tail).connect()
    c.until(lambda: len([m for m in c.log if m['type'] == 'pong']) == 41, 10,
            'pongs')
    reqs = [m['req'] for m in c.log if m['type'] == 'pong']
    assert reqs == ['y' * 120] + list(range(40))
    c.close()


def test_a_frame_split_into_single_bytes_is_read(stack, tenant):
    c = ws(stack.main, tenant).connect()
    data = frame_bytes(TEXT, json.dumps({'type': 'ping', 'req': 'slow'}))
    for b in data:
        c.send_raw(bytes([b]))
        time.sleep(0.002)
    assert pong_for(c, 'slow')['type'] == 'pong'
    c.close()


def test_many_frames_in_one_write_are_all_answered(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_raw(b''.join(frame_bytes(TEXT, json.dumps(
        {'type': 'ping', 'req': i})) for i in range(200)))
    c.until(lambda: len(c.of_type('pong')) == 200, 10, '200 pongs')
    assert [m['req'] for m in c.of_type('pong')] == list(range(200))
    c.close()


def test_the_server_sends_unmasked_unfragmented_text(stack, tenant):
    c = ws(stack.main, tenant).connect()
    c.send_json({'type': 'ping', 'req': 'raw'})
    fin, op, payload = c.recv_frame(5)
    assert fin and op == TEXT
    assert json.loads(payload) == {'type': 'pong', 'req': 'raw'}
    c.close()


# heartbeat and idle timeout

def test_server_pings_and_a_client_that_answers_stays(heartbeat, tenant):
    c = ws(heartbeat, tenant).connect()
    pings = 0
    end = time.monotonic() + 2.2
    while time.monotonic() < end:
        try:
            fin, op, payload = c.recv_frame(0.2)
        except TimeoutError:
            continue
        assert op != CLOSE, payload
        if op == PING:
            pings += 1
            c.send_frame(PONG, payload)
    # more than twice the idle timeout, and still open
    assert pings >= 4, pings
    assert c.request('ping')['type'] == 'pong'
    c.close()


def test_silent_client_is_pinged_then_closed_1001_as_idle(heartbeat,
                                                         tenant):
    c = ws(heartbeat, tenant).connect()
    t0 = time.monotonic()
    frames = []
    while True:
        fin, op, payload = c.recv_frame(5)
        frames.append(op)
        if op == CLOSE:
            break
    waited = time.monotonic() - t0
    assert frames.count(PING) >= 2, frames
    assert struct.unpack('!H', payload[:2])[0] == 1001, payload
    assert 0.8 <= waited <= 3, waited
    c.send_frame(CLOSE, close_payload(1001))
    assert c.tcp_closed(5)


def test_any_frame_from_the_client_keeps_it_alive(heartbeat, tenant):
    c = ws(heartbeat, tenant).connect()
    c.answer_pings = False
    end = time.monotonic() + 2.2
    while time.monotonic() < end:
        # never a pong: messages of its own are enough
        assert c.request('ping', timeout=2)['type'] == 'pong'
        time.sleep(0.25)
    assert c.pings >= 4, c.pings
    c.close()


# after a fault

def test_after_a_bad_frame_nothing_more_is_read(stack, tenant):
    # a frame over the limit, then what would be a ping and a close: the
    # stream after a broken frame is not trusted (RFC 6455 7.1.7)
    c = ws(stack.main, tenant).connect()
    huge = bytes([0x81, 0xFF]) + struct.pack('!Q', 1 << 20) + b'mask'
    c.send_raw(huge + frame_bytes(PING, b'after') +
               frame_bytes(TEXT, json.dumps({'type': 'ping', 'req': 'x'})))
    assert c.wait_closed(5) == 1009
    assert c.pings == 0 and not any(m.get('type') == 'pong' for m in c.log)


def test_a_connection_ends_when_its_token_expires(stack, tenant):
    ng = stack.nginx(name='ws-expiry', EXTRA='chat_jwt_leeway 0s;')
    c = ChatWS(ng.port, tenant.token('alice', ttl=2)).connect()
    c.start()
    assert c.request('ping')['type'] == 'pong'
    assert c.wait_closed(8) == 1008
    assert 'expired' in c.closed[1]


# the class of a refused token, in the handshake's 401

def test_a_refused_handshake_names_the_class_of_its_token(stack, tenant):
    from chatclient import hmac_token, claims
    bad = tenant.token('alice')[:-4] + 'AAAA'
    crit = hmac_token(claims('alice', tid=tenant.name), stack.secret,
                      header={'alg': 'HS256', 'crit': ['exp'], 'exp': 1})
    cases = [
        (dict(token=None), 'missing_token'),
        (dict(token=bad), 'bad_signature'),
        (dict(query=f'access_token={bad}'), 'bad_signature'),
        (dict(protocols=['chat.v1', f'bearer.{bad}']), 'bad_signature'),
        (dict(token='garbage'), 'malformed'),
        (dict(token=tenant.token('alice', ttl=-3600)), 'expired'),
        (dict(token=crit), 'unsupported_extension'),
    ]
    for kw, reason in cases:
        r = refused(ChatWS(stack.main.port, **kw))
        assert r.status == 401, kw
        error_body(r, 'unauthorized')
        body = json.loads(r.body)['error']
        assert set(body) == {'code', 'message', 'reason'}, body
        assert body['reason'] == reason, (kw, body)
        assert stack.secret not in r.body


# tokens never reach a log

def _logs(ng):
    try:
        access = (ng.prefix / 'logs' / 'access.log').read_text(
            errors='replace')
    except OSError:
        access = ''
    return access, ng.log_text()


def _wait_access_log(ng, text, timeout=5):
    deadline = time.monotonic() + timeout
    while text not in _logs(ng)[0]:
        assert time.monotonic() < deadline, f'{text} not in the access log'
        time.sleep(0.05)


def _assert_not_logged(ng, *tokens):
    access, errors = _logs(ng)
    for token in tokens:
        for part in token.split('.')[1:]:
            assert part not in access, f'{part[:12]}... in the access log'
            assert part not in errors, f'{part[:12]}... in the error log'


def test_access_token_of_a_handshake_is_not_logged(stack, tuned, tenant):
    """The token of ?access_token= is read, then hidden from $request,
    $request_uri and $args and from the "request:" of error log lines."""
    ng = stack.main
    marker = 'm' + str(time.time_ns())
    good = tenant.token('logged')
    bad = tenant.token('logged-bad')[:-6] + 'AAAAAA'
    header = tenant.token('logged-header')

    c = ChatWS(ng.port, None, query=f'{marker}=1&access_token={good}')
    c.connect()
    assert c.hello['user_id'] == 'logged'
    assert c.request('ping')['type'] == 'pong'
    c.close()

    # refused: its INFO line in the error log names the request
    r = refused(ChatWS(ng.port, None, query=f'access_token={bad}&{marker}=2'))
    assert r.status == 401

    # the header's token is taken; the query's is hidden all the same
    c = ChatWS(ng.port, header, query=f'{marker}=3&Access_Token={good}')
    c.connect()
    assert c.hello['user_id'] == 'logged-header'
    c.close()

    # refused before the token is read (the Origin)
    r = refused(ChatWS(tuned.port, None,
                       query=f'access_token={good}&{marker}=4',
                       headers={'Origin': 'https://evil.example.com'}))
    assert r.status == 403

    for n in (1, 2, 3):
        _wait_access_log(ng, f'{marker}={n}')
    _wait_access_log(tuned, f'{marker}=4')
    access = _logs(ng)[0]
    assert (f'"GET /ws/chat?{marker}=1&access_token=[redacted] HTTP/1.1" '
            f'101 ') in access
    assert (f'"GET /ws/chat?access_token=[redacted]&{marker}=2 HTTP/1.1" '
            f'401 ') in access
    assert f'?{marker}=3&Access_Token=[redacted] HTTP/1.1" 101 ' in access
    assert f'?access_token=[redacted]&{marker}=4 HTTP/1.1" 403 ' in \
        _logs(tuned)[0]
    assert any('token rejected' in line
               and f'request: "GET /ws/chat?access_token=[redacted]&{marker}=2'
               in line for line in _logs(ng)[1].splitlines())
    _assert_not_logged(ng, good, bad, header)
    _assert_not_logged(tuned, good)


# refresh_token: a new token for an open connection

@pytest.fixture(scope='module')
def strict_time(stack):
    """An nginx without leeway: a token ends when its exp says."""
    return stack.nginx(name='ws-refresh', EXTRA='chat_jwt_leeway 0s;')


def token_in_tenant_default(tenant, user):
    """A token of the same user in tenant "default" (no tenant claim)."""
    return tenant.stack.tokens.make(user)


def test_refresh_token_keeps_the_connection_past_the_old_token(strict_time,
                                                                tenant):
    c = ChatWS(strict_time.port, tenant.token('alice', ttl=2)).connect()
    c.start()
    m = c.request('refresh_token', token=tenant.token('alice', ttl=3600))
    assert m['type'] == 'ack', m
    assert set(m) == {'type', 'req'}, m
    time.sleep(3)
    assert c.request('ping')['type'] == 'pong'
    assert c.closed is None
    c.close()


def test_refresh_token_of_another_user_or_tenant_is_forbidden(
        strict_time, tenant, new_tenant):
    c = ChatWS(strict_time.port, tenant.token('alice', ttl=3)).connect()
    c.start()
    other = new_tenant()
    for token in (tenant.token('bob'), other.token('alice'),
                  token_in_tenant_default(tenant, 'alice')):
        m = c.request('refresh_token', token=token)
        assert m['type'] == 'error', m
        assert m['error']['code'] == 'forbidden', m
        assert 'another user or tenant' in m['error']['message'], m
    # the old token stays, and ends the connection
    assert c.wait_closed(8) == 1008
    assert 'expired' in c.closed[1]


def test_a_bad_refresh_token_is_unauthorized_and_the_connection_stays(
        stack, tenant):
    from chatclient import hmac_token, claims
    c = ChatWS(stack.main.port, tenant.token('alice')).connect()
    c.start()
    good = claims('alice', tid=tenant.name)
    cases = [
        ('garbage', 'malformed'),
        (tenant.token('alice')[:-4] + 'AAAA', 'bad_signature'),
        (tenant.token('alice', ttl=-3600), 'expired'),
        (tenant.token('alice', nbf=int(time.time()) + 3600),
         'not_yet_valid'),
        (hmac_token(good, stack.secret,
                    header={'alg': 'HS256', 'crit': ['exp'], 'exp': 1}),
         'unsupported_extension'),
        (hmac_token(good, stack.secret, alg='HS512'),
         'algorithm_not_allowed'),
        (stack.tokens.make('al\u0085ice', tenant=tenant.name),
         'invalid_claim'),
    ]
    for token, reason in cases:
        m = c.request('refresh_token', token=token)
        assert m['type'] == 'error', m
        assert m['error'] == {'code': 'unauthorized',
                              'message': 'the token is invalid',
                              'reason': reason}, (reason, m)
    for fields in ({}, {'token': 5}, {'token': None},
                   {'token': tenant.token('alice'), 'extra': 1}):
        m = c.request('refresh_token', **fields)
        assert m['type'] == 'error', m
        assert m['error']['code'] == 'bad_request', m
    assert c.request('ping')['type'] == 'pong'
    assert c.closed is None
    assert c.hello['user_id'] == 'alice'
    c.close()


def test_refresh_token_that_ends_sooner_ends_the_connection_sooner(
        strict_time, tenant):
    c = ChatWS(strict_time.port, tenant.token('alice', ttl=3600)).connect()
    c.start()
    m = c.request('refresh_token', token=tenant.token('alice', ttl=2))
    assert m['type'] == 'ack', m
    assert c.wait_closed(6) == 1008
    assert 'expired' in c.closed[1]


def test_refresh_token_is_not_logged(strict_time, tenant):
    c = ChatWS(strict_time.port, tenant.token('alice')).connect()
    c.start()
    bad = tenant.token('alice')[:-4] + 'AAAA'
    good = tenant.token('alice', ttl=600)
    assert c.request('refresh_token', token=bad)['type'] == 'error'
    assert c.request('refresh_token', token=good)['type'] == 'ack'
    c.close()
    _assert_not_logged(strict_time, good, bad)
