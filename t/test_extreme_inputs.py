"""Bad input of every kind gets a clear error while the server goes on
serving others (issue 19).

Against the shared nginx the fixtures start, over REST and WebSocket:
control characters, invalid UTF-8, 10,000-level nesting, numbers out of
range, a 1 MiB query string, a 1 MiB header, 10,000 headers and slow
bodies from many connections.  Each refusal must be the status and code
docs/api.md gives ({"error": {"code", "message"}}), in UTF-8, with a
message in the module's words (no library or database internals).  After
every test another user of another tenant is still served over REST and
WebSocket (the autouse fixture), and the last test reads the part of the
error log this module wrote: no sanitizer report, no crashed worker.

Where the server answers before the module sees a request (a request
line or headers over large_client_header_buffers) the answer is nginx's
own page (docs/security.md, "Logs never hold tokens"): its status is
checked, and that it holds nothing of the request.

The defects this file found first (Postgres's own words for a cursor or
a time out of its range, a field name cut inside a character, a control
character in a path's user id) are fixed; their tests stand as written.
"""

import hashlib
import hmac
import json
import re
import select
import socket
import threading
import time

import pytest

from chatclient import Client, b64url, expect_error
from conftest import BAD_LOG, Tenant
from wsclient import TEXT, ChatWS, HandshakeRefused

# what an error message must never show: the JSON library's, the
# database's or the token library's own words
INTERNAL = re.compile(r'jansson|JSON_[A-Z_]+|json_[a-z_]+|libpq|libjwt|'
                      r'SQLSTATE|PL/pgSQL|for type [a-z]|out of range: "|'
                      r'timestamp out of range|chat\.[a-z_]+\(', re.I)

C0 = [chr(c) for c in range(0x01, 0x20)]
MiB = 1 << 20


# helpers

def refused(r, status, needle=None):
    """r is the error object of that status (expect_error), in strict
    UTF-8, in the module's words; returns the message."""
    msg = expect_error(r, status, needle)
    json.loads(r.data.decode('utf-8'))          # strict: no stray bytes
    assert not INTERNAL.search(msg), r
    return msg


def ws_error(m, code='bad_request', needle=None, req=None):
    """m is an error message of the WebSocket protocol."""
    assert m['type'] == 'error', m
    assert m.get('req') == req, m
    err = m['error']
    assert set(err) == {'code', 'message'}, m
    assert err['code'] == code, m
    assert isinstance(err['message'], str) and err['message'], m
    assert not INTERNAL.search(err['message']), m
    if needle is not None:
        assert needle in err['message'], m
    return err['message']


def ws_unreadable(c):
    """The next error without a req: the frame was not a JSON object."""
    m = c.wait(lambda m: m.get('type') == 'error' and 'req' not in m, 5,
               'an error without req')
    return ws_error(m, needle='not a JSON object')


def post_raw(client, path, raw):
    return client.post(path, raw=raw,
                       headers={'Content-Type': 'application/json'})


def conv(client, members=('bob',)):
    return client.create('group', list(members))['id']


def last_seq(client, cid):
    r = client.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json['last_seq']


def connect(tenant, user):
    return ChatWS(tenant.nginx.port, tenant.token(user)).connect()


def exchange(port, data, timeout=15):
    """Sends data on a new connection (from a thread: the server may answer
    and close before all of it is sent) and reads until the server
    closes.  Returns (status, headers, body) of the answer, status None
    when nothing came."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)

    def send():
        try:
            s.sendall(data)
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    out = b''
    deadline = time.monotonic() + timeout
    try:
        while True:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError('the server did not close the '
                                     'connection') from None
            except OSError:
                break           # a reset after the answer
            if not chunk:
                break
            out += chunk
    finally:
        sender.join(5)
        s.close()
    if not out:
        return None, {}, b''
    return parse_response(out)


def parse_response(data):
    head, _, body = data.partition(b'\r\n\r\n')
    status_line, *lines = head.decode('latin-1').split('\r\n')
    hdrs = {k.strip().lower(): v.strip() for k, v in
            (line.split(':', 1) for line in lines if ':' in line)}
    return int(status_line.split()[1]), hdrs, body


def read_response(s, timeout=15):
    """One whole HTTP/1.1 answer (with Content-Length) from a socket."""
    s.settimeout(timeout)
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = s.recv(65536)
        assert chunk, ('closed before an answer', data)
        data += chunk
    status, hdrs, body = parse_response(data)
    while len(body) < int(hdrs.get('content-length', 0)):
        chunk = s.recv(65536)
        assert chunk, ('closed inside the answer', data)
        body += chunk
    return status, hdrs, body


# fixtures

@pytest.fixture(scope='module')
def baseline(stack):
    """Where this module starts: the workers and the end of the log."""
    return {'pids': sorted(stack.main.worker_pids()),
            'offset': stack.main.error_log.stat().st_size}


@pytest.fixture(scope='module')
def bystander(stack, baseline):
    """Another tenant's user, with a conversation of her own."""
    t = Tenant(stack, stack.main)
    carol = t.client('carol')
    return t, carol, conv(carol, ['dave'])


@pytest.fixture(autouse=True)
def still_serving(bystander):
    """After whatever a test sent, another user is served over REST and
    over WebSocket."""
    yield
    check_bystander(bystander)


def check_bystander(bystander, tag='still here'):
    t, carol, cid = bystander
    r = carol.get('conversations')
    assert r.status == 200, r
    assert cid in [c['id'] for c in r.json['items']], r
    c = connect(t, 'carol')
    try:
        m = c.request('send_message', conversation_id=cid, content=tag)
        assert m['type'] == 'ack', m
        assert m['message']['content'] == tag, m
    finally:
        c.close()


# control characters

NUL_CASES = [
    ('POST', 'conversations/{cid}/messages', b'{"content": "a\\u0000b"}'),
    ('POST', 'conversations/{cid}/messages',
     b'{"content": "x", "client_id": "c\\u0000"}'),
    ('POST', 'conversations', b'{"type": "group", "title": "a\\u0000b"}'),
    ('PATCH', 'conversations/{cid}', b'{"title": "\\u0000"}'),
    ('POST', 'conversations/direct', b'{"user_id": "bob\\u0000"}'),
    ('POST', 'conversations',
     b'{"type": "group", "member_ids": ["bob\\u0000"]}'),
    ('POST', 'conversations/{cid}/messages', b'{"\\u0000": 1}'),
]


@pytest.mark.parametrize('method,path,raw', NUL_CASES)
def test_escaped_nul_is_refused_in_our_words(tenant, method, path, raw):
    alice = tenant.client('alice')
    cid = conv(alice)
    r = alice.request(method, path.format(cid=cid), raw=raw)
    msg = refused(r, 400, 'not valid JSON')
    if raw.startswith(b'{"\\u0000"'):
        assert 'NUL byte in object key' in msg, r
    else:
        assert '\\u0000' in msg and 'not allowed' in msg, r
    assert 'JSON_ALLOW_NUL' not in r.body
    # nothing was made or changed
    assert last_seq(alice, cid) == 0
    assert [c['id'] for c in alice.get('conversations').json['items']] \
        == [cid]


def test_raw_c0_controls_inside_json_strings_are_refused(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    for ch in C0:
        b = ch.encode()
        for path, raw in (
                (f'conversations/{cid}/messages',
                 b'{"content": "a' + b + b'b"}'),
                ('conversations',
                 b'{"type": "group", "title": "t' + b + b'"}'),
                ('conversations/direct', b'{"user_id": "bob' + b + b'"}')):
            r = post_raw(alice, path, raw)
            msg = refused(r, 400, 'not valid JSON')
            assert (f'control character {ord(ch):#x}' if ch != '\n'
                    else 'unexpected newline') in msg, r
    assert last_seq(alice, cid) == 0
    assert len(alice.get('conversations').json['items']) == 1


def test_escaped_c0_and_c1_controls_in_text_round_trip(tenant):
    """Text may hold any character but NUL (docs/api.md says no more of
    content, titles or client ids): sent escaped, each comes back as sent,
    escaped again in the answer."""
    alice = tenant.client('alice')
    cid = conv(alice)
    text = 'a' + ''.join(C0) + '\x7f\x80\x85\x9f' + 'b'
    r = alice.post(f'conversations/{cid}/messages',
                   {'content': text, 'client_id': 'c\x01\x85'})
    assert r.status == 201, r
    assert r.json['content'] == text and r.json['client_id'] == 'c\x01\x85'
    assert b'\\u0001' in r.data and b'\x01' not in r.data
    got = alice.get(f'conversations/{cid}/messages').json['items']
    assert [m['content'] for m in got] == [text]
    r = alice.patch(f'conversations/{cid}', {'title': 'T\x1f\x85'})
    assert r.status == 200 and r.json['title'] == 'T\x1f\x85', r


@pytest.mark.parametrize('field', ['member_ids', 'user_id', 'mentions',
                                   'user_ids', 'presence'])
def test_user_ids_with_c0_controls_or_del_are_refused_naming_the_field(
        tenant, field):
    alice = tenant.client('alice')
    cid = conv(alice)
    for bad in ('bob\x01', '\x1f', 'bob\x7f', '\t'):
        if field == 'member_ids':
            r = alice.post('conversations', {'type': 'group',
                                             'member_ids': [bad]})
        elif field == 'user_id':
            r = alice.post('conversations/direct', {'user_id': bad})
        elif field == 'mentions':
            r = alice.post(f'conversations/{cid}/messages',
                           {'content': 'x', 'mentions': [bad]})
        elif field == 'user_ids':
            r = alice.post(f'conversations/{cid}/members',
                           {'user_ids': [bad]})
        else:
            r = alice.get('presence?user_ids=' + ''.join(
                f'%{b:02x}' for b in bad.encode()))
        name = 'user_ids' if field == 'presence' else field
        refused(r, 400, f'"{name}"')
    assert last_seq(alice, cid) == 0


def test_nel_and_c1_in_named_ids_pass_but_never_sign_in(tenant):
    """docs/security.md: ids named in requests are checked loosely (no C0
    or DEL); a token's sub or tenant with a C1 control (U+0085) is
    refused as invalid_claim, over REST and the WebSocket handshake."""
    alice = tenant.client('alice')
    r = alice.post('conversations', {'type': 'group',
                                     'member_ids': ['bob\x85']})
    assert r.status == 201 and r.json['member_count'] == 2, r
    members = alice.get(f'conversations/{r.json["id"]}/members').json
    assert sorted(m['user_id'] for m in members['items']) == \
        ['alice', 'bob\x85']
    for who in (tenant.client('bob\x85'),
                tenant.client('bob', tid=tenant.name + '\x85')):
        r = who.get('conversations')
        refused(r, 401)
        assert r.json['error']['reason'] == 'invalid_claim', r
        assert '\x85' not in r.body and '\\u0085' not in r.body
    with pytest.raises(HandshakeRefused) as e:
        ChatWS(tenant.nginx.port, tenant.token('bob\x85')).connect()
    assert e.value.status == 401
    assert json.loads(e.value.body)['error']['reason'] == 'invalid_claim'


def test_controls_in_path_ids_are_refused_naming_them(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    mid = alice.post(f'conversations/{cid}/messages',
                     {'content': 'x'}).json['id']
    refused(alice.get(f'conversations/{cid}%01'), 400, '"conversation_id"')
    refused(alice.get('conversations/%C2%85'), 400, '"conversation_id"')
    refused(alice.get(f'conversations/{cid}/messages/{mid}%1f'), 400,
            '"message_id"')
    refused(alice.delete(f'conversations/{cid}/messages/{mid}/reactions/'
                         '%01'), 400, '"emoji"')


def test_a_user_id_with_a_control_in_a_path_is_400_naming_it(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    refused(alice.delete(f'conversations/{cid}/members/bob%01'), 400,
            '"user_id"')
    refused(alice.patch(f'conversations/{cid}/members/bob%01',
                        {'role': 'admin'}), 400, '"user_id"')


def test_controls_over_websocket(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    c = connect(tenant, 'alice')
    try:
        # unreadable frames: an error without req; the connection stays
        c.send_frame(TEXT, b'{"type": "ping", "req": "a\\u0000b"}')
        ws_unreadable(c)
        for ch in ('\x01', '\x0a', '\x1f'):
            c.send_frame(TEXT, b'{"type": "ping", "req": "a' + ch.encode()
                         + b'"}')
            ws_unreadable(c)
        assert c.request('ping')['type'] == 'pong'
        # escaped, in content: kept as sent
        text = 'w' + ''.join(C0) + '\x85'
        m = c.request('send_message', conversation_id=cid, content=text)
        assert m['type'] == 'ack' and m['message']['content'] == text, m
        # a req of NEL is a string like any: echoed
        c.send_json({'type': 'ping', 'req': 'r\x85'})
        assert c.wait(lambda m: m.get('type') == 'pong')['req'] == 'r\x85'
        # user ids with C0: refused naming the field
        m = c.request('presence_subscribe', user_ids=['bob\x01'])
        ws_error(m, needle='"user_ids"', req=m['req'])
        assert c.closed is None and not c.eof
    finally:
        c.close()
    assert last_seq(alice, cid) == 1


def signed_token(stack, payload):
    """A token of exactly these payload bytes, signed with the stack's
    key: only what it says is wrong."""
    header = b64url({'alg': 'HS256', 'typ': 'JWT'})
    signing_input = f'{header}.{b64url(payload)}'
    sig = hmac.new(stack.secret.encode(), signing_input.encode(),
                   hashlib.sha256).digest()
    return f'{signing_input}.{b64url(sig)}'


def token_cases():
    exp = int(time.time()) + 600
    return [  # (payload, reason)
        (b'{"sub": "a\\u0000", "exp": %d}' % exp, 'malformed'),
        (b'{"sub": "a\x01", "exp": %d}' % exp, 'malformed'),
        (b'{"sub": "a\\u0001", "exp": %d}' % exp, 'invalid_claim'),
        (b'{"sub": "a\xc2\x85", "exp": %d}' % exp, 'invalid_claim'),
        (b'{"sub": "a\xff", "exp": %d}' % exp, 'malformed'),
        (b'{"sub": "a\xc0\xaf", "exp": %d}' % exp, 'malformed'),
        (b'{"sub": "a\\ud800", "exp": %d}' % exp, 'malformed'),
        (b'{"sub": "a", "exp": %d, "x": ' % exp + b'[' * 2500 + b']' * 2500
         + b'}', 'malformed'),
        (b'{"sub": "a", "exp": 1e400}', 'malformed'),
        (b'{"sub": "a", "exp": 18446744073709551616}', 'malformed'),
        (b'{"sub": "a", "exp": 9223372036854775807}', 'invalid_claim'),
        (b'{"sub": "a", "exp": -1}', 'expired'),
        (b'{"sub": "a", "exp": %d, "nbf": 9223372036854775807}' % exp,
         'invalid_claim'),
        (b'{"sub": "a", "exp": %d, "nbf": -9223372036854775808}' % exp,
         'invalid_claim'),
    ]


def test_tokens_with_bad_ids_text_nesting_or_numbers_are_401(stack):
    """The token's JSON is read as strictly as a body, and a refusal says
    its class only (docs/security.md): REST and the WebSocket handshake
    alike."""
    for payload, reason in token_cases():
        token = signed_token(stack, payload)
        r = Client(stack.main.url, token).get('conversations')
        refused(r, 401)
        assert r.json['error']['reason'] == reason, (payload[:60], r)
        with pytest.raises(HandshakeRefused) as e:
            ChatWS(stack.main.port, token).connect()
        assert e.value.status == 401, payload[:60]
        assert json.loads(e.value.body)['error']['reason'] == reason
    # the control: the same shape, nothing wrong
    exp = int(time.time()) + 600
    token = signed_token(stack, b'{"sub": "a", "exp": %d}' % exp)
    assert Client(stack.main.url, token).get('conversations').status == 200
    ChatWS(stack.main.port, token).connect().close()


# invalid UTF-8

BAD_UTF8 = [b'\xff', b'\xfe', b'\xc0\xaf', b'\xe0\x80\xaf', b'\xed\xa0\x80',
            b'\xf4\x90\x80\x80', b'\xc3\x28', b'\x80', b'\xe2\x82']


@pytest.mark.parametrize('bad', BAD_UTF8, ids=lambda b: b.hex())
def test_invalid_utf8_in_a_rest_body_is_400(tenant, bad):
    alice = tenant.client('alice')
    cid = conv(alice)
    for path, raw in (
            (f'conversations/{cid}/messages', b'{"content": "a' + bad + b'"}'),
            ('conversations', b'{"type": "group", "title": "' + bad + b'"}'),
            ('conversations/direct', b'{"user_id": "' + bad + b'"}'),
            (f'conversations/{cid}/messages', b'{"' + bad + b'": 1}')):
        r = post_raw(alice, path, raw)
        msg = refused(r, 400, 'not valid JSON')
        assert 'unable to decode byte' in msg, r
    assert last_seq(alice, cid) == 0


@pytest.mark.parametrize('escape', [b'\\ud800', b'\\udfff', b'\\udc00x',
                                    b'\\ud800\\u0041', b'\\ud83d\\ud83d'])
def test_lone_surrogate_escapes_are_400(tenant, escape):
    alice = tenant.client('alice')
    cid = conv(alice)
    r = post_raw(alice, f'conversations/{cid}/messages',
                 b'{"content": "' + escape + b'"}')
    msg = refused(r, 400, 'not valid JSON')
    assert 'invalid Unicode' in msg, r
    # a pair is a character: taken
    r = post_raw(alice, f'conversations/{cid}/messages',
                 b'{"content": "\\ud83d\\ude00"}')
    assert r.status == 201 and r.json['content'] == '\U0001f600', r
    assert last_seq(alice, cid) == 1


def test_invalid_utf8_in_query_strings_and_paths_is_400_naming_them(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    refused(alice.get('search?q=%ff'), 400, '"q": must be valid UTF-8')
    refused(alice.get('search?q=%ed%a0%80'), 400, '"q": must be valid UTF-8')
    refused(alice.get('presence?user_ids=bob,%c0%af'), 400,
            '"user_ids": must be valid UTF-8')
    refused(alice.delete(f'conversations/{cid}/members/%ff'), 400,
            '"user_id": must be valid UTF-8')
    refused(alice.post('files?name=a%c3%28.txt', raw=b'x',
                       headers={'Content-Type': 'text/plain'}), 400,
            '"name": must be valid UTF-8')
    refused(alice.get(f'conversations/{cid}/messages?cursor=%ff'), 400,
            '"cursor"')


@pytest.mark.parametrize('bad', BAD_UTF8, ids=lambda b: b.hex())
def test_invalid_utf8_in_a_websocket_text_frame_is_closed_1007(tenant, bad):
    """RFC 6455 8.1 and docs/api.md (Closing codes): 1007, then the
    server ends TCP; its other connections go on."""
    c = connect(tenant, 'alice')
    other = connect(tenant, 'alice')
    try:
        c.send_frame(TEXT, b'{"type": "ping", "req": "' + bad + b'"}')
        assert c.wait_closed(5) == 1007, (c.closed, c.log)
        assert c.tcp_closed(5)
        assert other.request('ping')['type'] == 'pong'
    finally:
        c.close()
        other.close()


def test_lone_surrogate_escape_over_websocket_is_an_error_not_a_close(
        tenant):
    # valid UTF-8 on the wire, not a valid JSON text: the protocol's error
    c = connect(tenant, 'alice')
    try:
        for escape in (b'\\ud800', b'\\udfff'):
            c.send_frame(TEXT, b'{"type": "ping", "req": "' + escape + b'"}')
            ws_unreadable(c)
        assert c.request('ping')['type'] == 'pong'
    finally:
        c.close()


# nesting

DEEP = [b'[' * 10000 + b']' * 10000,
        b'{"a":' * 10000 + b'1' + b'}' * 10000,
        b'{"content": ' + b'[' * 10000 + b']' * 10000 + b'}',
        b'[{"a":' * 5000 + b'0' + b'}]' * 5000]


@pytest.mark.parametrize('raw', DEEP, ids=['arrays', 'objects', 'in a field',
                                           'mixed'])
def test_ten_thousand_levels_of_nesting_are_400(tenant, raw):
    alice = tenant.client('alice')
    cid = conv(alice)
    r = post_raw(alice, f'conversations/{cid}/messages', raw)
    msg = refused(r, 400, 'not valid JSON')
    assert 'maximum parsing depth' in msg, r
    assert last_seq(alice, cid) == 0


def test_ten_thousand_levels_over_websocket_are_an_error(tenant):
    c = connect(tenant, 'alice')
    try:
        for raw in DEEP:
            c.send_frame(TEXT, raw)
            ws_unreadable(c)
        assert c.request('ping')['type'] == 'pong'
    finally:
        c.close()


# numbers out of range

# numbers the JSON parser cannot hold: the body is refused whole
UNREADABLE = {'1e400': 'real number overflow',
              '-1e400': 'real number overflow',
              str(2 ** 63): 'too big integer', str(2 ** 64): 'too big integer',
              str(-2 ** 63 - 1): 'too big negative integer'}
# numbers it reads, outside what the field takes: refused naming the field
OUT_OF_RANGE = ['-1', '1.5', '1.0', '1e2', str(2 ** 53), str(2 ** 63 - 1),
                '"1"', 'true', '[1]']


def number_cases(cid, mid):
    return [  # (path, template, field)
        (f'conversations/{cid}/messages', '{"content": "x", "reply_to": %s}',
         'reply_to'),
        (f'conversations/{cid}/messages',
         '{"content": "x", "attachments": [%s]}', 'attachments'),
        (f'conversations/{cid}/read', '{"seq": %s}', 'seq'),
        (f'conversations/{cid}/messages/{mid}/votes', '{"choices": [%s]}',
         'choices'),
        (f'conversations/{cid}/messages/{mid}/forward',
         '{"conversation_id": %s}', 'conversation_id'),
    ]


def test_numbers_out_of_range_in_rest_bodies_are_400(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    mid = alice.post(f'conversations/{cid}/messages',
                     {'content': 'x'}).json['id']
    for path, template, field in number_cases(cid, mid):
        for number, words in UNREADABLE.items():
            r = post_raw(alice, path, (template % number).encode())
            msg = refused(r, 400, 'not valid JSON')
            assert words in msg and number.lstrip('-') in msg, r
        for number in OUT_OF_RANGE:
            r = post_raw(alice, path, (template % number).encode())
            refused(r, 400, f'"{field}"')
    # the largest id passes the check and is looked up: not found
    r = post_raw(alice, f'conversations/{cid}/messages',
                 b'{"content": "x", "reply_to": 9007199254740991}')
    refused(r, 400, '"reply_to": no such message')
    # nothing was sent or read by all of that
    assert last_seq(alice, cid) == 1


@pytest.mark.parametrize('param', ['limit', 'before', 'after', 'thread'])
def test_numbers_out_of_range_in_query_strings_are_400(tenant, param):
    alice = tenant.client('alice')
    cid = conv(alice)
    path = f'conversations/{cid}/messages'
    for value in ('1e400', '-1', str(2 ** 63), str(2 ** 64), '1.5',
                  str(2 ** 53), '9' * 4000, '%00', '0x10', '+1', '%201'):
        refused(alice.get(f'{path}?{param}={value}'), 400, f'"{param}"')
    if param == 'limit':
        refused(alice.get(f'{path}?limit=0'), 400, '"limit"')
        r = alice.get(f'{path}?limit=9007199254740991')   # clamped to 100
        assert r.status == 200, r


def test_numbers_out_of_range_in_path_ids_are_400(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    for value in ('1e400', '-1', str(2 ** 63), str(2 ** 64), '1.5', '0',
                  str(2 ** 53), '9' * 4000):
        refused(alice.get(f'conversations/{value}'), 400,
                '"conversation_id"')
        refused(alice.get(f'conversations/{cid}/messages/{value}'), 400,
                '"message_id"')
    refused(alice.get('conversations/9007199254740991'), 404)


def test_numbers_out_of_range_over_websocket(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    c = connect(tenant, 'alice')
    try:
        for number in UNREADABLE:
            c.send_frame(TEXT, ('{"type": "send_message", "req": "n", '
                                '"conversation_id": %s, "content": "x"}'
                                % number).encode())
            ws_unreadable(c)
            c.send_frame(TEXT, ('{"type": "ping", "req": %s}'
                                % number).encode())
            ws_unreadable(c)
        for number in ('-1', '1.5', '0', str(2 ** 53), str(2 ** 63 - 1)):
            req = f'n{number}'
            c.send_frame(TEXT, ('{"type": "send_message", "req": "%s", '
                                '"conversation_id": %s, "content": "x"}'
                                % (req, number)).encode())
            ws_error(c.wait(lambda m: m.get('req') == req), req=req,
                     needle='"conversation_id"')
            req = f's{number}'
            c.send_frame(TEXT, ('{"type": "mark_read", "req": "%s", '
                                '"conversation_id": %d, "seq": %s}'
                                % (req, cid, number)).encode())
            m = c.wait(lambda m: m.get('req') == req)
            if number == '0':
                assert m['type'] == 'ack', m        # read up to 0: allowed
            else:
                ws_error(m, req=req, needle='"seq"')
            req = f'r{number}'
            c.send_frame(TEXT, ('{"type": "resume", "req": "%s", '
                                '"conversations": {"%d": %s}}'
                                % (req, cid, number)).encode())
            m = c.wait(lambda m: m.get('req') == req)
            if number == '0':
                assert m['type'] == 'resumed', m
            else:
                ws_error(m, req=req, needle='"conversations"')
        # a req that is a float is not one: refused without echoing it
        c.send_frame(TEXT, b'{"type": "ping", "req": 1.5}')
        m = c.wait(lambda m: m.get('type') == 'error' and 'req' not in m)
        ws_error(m, needle='"req"')
        # a resume naming a conversation id past 2^53
        m = c.request('resume', conversations={str(2 ** 64): 1})
        ws_error(m, req=m['req'], needle='"conversations"')
        assert c.request('ping')['type'] == 'pong'
    finally:
        c.close()
    assert last_seq(alice, cid) == 0


@pytest.mark.parametrize('cursor', ['0.9999999999999999999.1',
                                    '1.-9223372036854775808.1'])
def test_a_conversation_cursor_out_of_range_is_400_naming_it(tenant, cursor):
    alice = tenant.client('alice')
    conv(alice)
    refused(alice.get(f'conversations?cursor={cursor}'), 400, '"cursor"')


@pytest.mark.parametrize('case', ['offset', 'fraction', 'search'])
def test_a_timestamp_postgres_cannot_hold_is_400_naming_the_field(tenant,
                                                                   case):
    alice = tenant.client('alice')
    cid = conv(alice)
    if case == 'search':
        r = alice.get('search?q=x&from=0001-01-01T00:00:00%2B23:59')
        field = 'from'
    else:
        value = ('2030-01-01T00:00:00-23:59' if case == 'offset' else
                 '2030-01-01T00:00:00.' + '9' * 150 + 'Z')
        r = alice.patch(f'conversations/{cid}/me', {'muted_until': value})
        field = 'muted_until'
    if r.status != 200:         # taken as an instant, or refused by name
        refused(r, 400, f'"{field}"')


def test_an_unknown_long_field_name_keeps_the_explanation(tenant):
    alice = tenant.client('alice')
    cid = conv(alice)
    raw = json.dumps({'a' + '\u00e9' * 40: 1}, ensure_ascii=False).encode()
    refused(post_raw(alice, f'conversations/{cid}/messages', raw), 400,
            'is not a known field')


def test_an_unknown_long_field_name_cut_between_characters(tenant):
    # the control of the case above: cut where a character ends
    alice = tenant.client('alice')
    cid = conv(alice)
    raw = json.dumps({'\u00e9' * 100: 1}, ensure_ascii=False).encode()
    msg = refused(post_raw(alice, f'conversations/{cid}/messages', raw), 400,
                  'is not a known field')
    assert msg.startswith('"' + '\u00e9' * 32 + '"'), msg


# what nginx refuses before the module sees the request

def request_bytes(token, target='/api/chat/conversations', headers=''):
    return (f'GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            f'Authorization: Bearer {token}\r\n{headers}\r\n').encode()


WS_HEADERS = ('Upgrade: websocket\r\nConnection: Upgrade\r\n'
              'Sec-WebSocket-Version: 13\r\n'
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')


def nginx_refusal(status, hdrs, body, expected, token):
    assert status == expected, (status, hdrs, body[:300])
    assert hdrs.get('connection') == 'close', hdrs
    assert token.encode() not in body
    assert b'xxxxxxxx' not in body and b'X-H1' not in body
    assert not INTERNAL.search(body.decode('latin-1'))
    if hdrs.get('content-type', '').startswith('application/json'):
        assert set(json.loads(body)) == {'error'}, body


@pytest.mark.parametrize('target', ['/api/chat/conversations', '/ws/chat'])
def test_a_one_mib_query_string_is_414(stack, tenant, target):
    token = tenant.token('alice')
    extra = WS_HEADERS if target == '/ws/chat' else ''
    status, hdrs, body = exchange(stack.main.port, request_bytes(
        token, f'{target}?limit=1&pad={"x" * MiB}', extra))
    nginx_refusal(status, hdrs, body, 414, token)


@pytest.mark.parametrize('target', ['/api/chat/conversations', '/ws/chat'])
def test_a_one_mib_header_is_400(stack, tenant, target):
    token = tenant.token('alice')
    extra = WS_HEADERS if target == '/ws/chat' else ''
    status, hdrs, body = exchange(stack.main.port, request_bytes(
        token, target, extra + f'X-Big: {"x" * MiB}\r\n'))
    nginx_refusal(status, hdrs, body, 400, token)
    assert b'Request Header' in body or b'header' in body.lower(), body


@pytest.mark.parametrize('target', ['/api/chat/conversations', '/ws/chat'])
def test_ten_thousand_headers_are_400(stack, tenant, target):
    token = tenant.token('alice')
    extra = WS_HEADERS if target == '/ws/chat' else ''
    many = ''.join(f'X-H{i}: v\r\n' for i in range(10000))
    status, hdrs, body = exchange(stack.main.port, request_bytes(
        token, target, extra + many))
    nginx_refusal(status, hdrs, body, 400, token)


def test_a_nul_in_the_request_line_is_nginx_400(stack, tenant):
    token = tenant.token('alice')
    status, hdrs, body = exchange(stack.main.port, request_bytes(
        token, '/api/chat/conversations/%00'))
    nginx_refusal(status, hdrs, body, 400, token)


def test_large_but_allowed_query_and_headers_are_served(stack, tenant):
    # the controls of the three above: below large_client_header_buffers
    alice = tenant.client('alice')
    cid = conv(alice)
    r = alice.get(f'conversations?limit=5&pad={"x" * 6000}')
    assert r.status == 200 and [c['id'] for c in r.json['items']] == [cid], r
    r = alice.get('conversations', headers={'X-Big': 'x' * 6000})
    assert r.status == 200, r
    r = alice.get('conversations',
                  headers={f'X-H{i}': 'v' for i in range(500)})
    assert r.status == 200, r


# slow bodies

def test_fifty_slow_bodies_do_not_hold_up_others(tenant, bystander):
    """50 connections each send a POST body a byte a second; meanwhile
    another tenant's user is served over REST and WebSocket.  Then the
    bodies end: the good ones are stored, the bad ones refused."""
    alice = tenant.client('alice')
    cid = conv(alice)
    token = tenant.token('alice')
    bodies = []
    for i in range(50):
        if i % 2:
            bodies.append(json.dumps({'content': f'slow {i:02d}'}).encode())
        else:   # a raw control inside the string
            bodies.append(b'{"content": "slow\x01' + b'%02d"}' % i)
    socks = []
    try:
        for body in bodies:
            s = socket.create_connection(('127.0.0.1', tenant.nginx.port),
                                         timeout=15)
            s.sendall((f'POST /api/chat/conversations/{cid}/messages '
                       f'HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                       f'Authorization: Bearer {token}\r\n'
                       f'Content-Type: application/json\r\n'
                       f'Content-Length: {len(body)}\r\n\r\n').encode()
                      + body[:1])
            socks.append(s)
        for k in range(1, 4):
            time.sleep(1)
            for s, body in zip(socks, bodies):
                s.sendall(body[k:k + 1])
            # the others are answered while every slow body is open
            check_bystander(bystander, f'during slow bodies {k}')
            r, _, _ = select.select(socks, [], [], 0)
            assert r == [], 'a slow body was answered or closed early'
        for s, body in zip(socks, bodies):
            s.sendall(body[4:])
        answers = [read_response(s) for s in socks]
    finally:
        for s in socks:
            s.close()
    for i, (status, hdrs, body) in enumerate(answers):
        data = json.loads(body.decode('utf-8'))
        if i % 2:
            assert status == 201, (i, status, body)
            assert data['content'] == f'slow {i:02d}', data
        else:
            assert status == 400, (i, status, body)
            assert data['error']['code'] == 'bad_request', data
            assert 'control character 0x1' in data['error']['message']
    items = alice.get(f'conversations/{cid}/messages?limit=100').json['items']
    assert sorted(m['content'] for m in items) == \
        [f'slow {i:02d}' for i in range(1, 50, 2)]


# the end: nothing of the above hurt the server

def test_no_sanitizer_report_and_no_worker_died(stack, baseline):
    """Last in this module: the error log this module wrote has no
    sanitizer report, alert or crash, no 500 of the module, and the
    workers are those that started it (a crashed one is replaced)."""
    with open(stack.main.error_log, 'rb') as f:
        f.seek(baseline['offset'])
        text = f.read().decode(errors='replace')
    assert text, 'the error log did not grow: wrong file?'
    bad = [line for line in text.splitlines()
           if BAD_LOG.search(line) or '[crit]' in line
           or re.search(r'\[error\].*chat: .*failed with', line)]
    assert not bad, bad[:20]
    assert sorted(stack.main.worker_pids()) == baseline['pids']
