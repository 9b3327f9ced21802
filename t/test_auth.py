"""Bearer tokens: what is accepted, what is refused (401), and tenants.

The shared nginx pins HS256 with the stack's secret.  Two more nginx
instances of the shared stack pin RS256 and ES256 with public keys made
here, to prove that the algorithm is pinned (no alg confusion, no none).
"""

import hashlib
import hmac
import http.client
import json
import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chatclient import (Client, b64url, claims, expect_error, hmac_token,
                        unsigned_token)


def payload(sub, **kw):
    """The claims of a token of sub, as Tokens.make builds them."""
    return claims(sub, **kw)


def accepted(client, token):
    r = client.get('conversations', token=token)
    assert r.status == 200, r
    # every caller's tenant is fresh: the list is there, and empty
    assert r.json == {'items': [], 'next_cursor': None}, r
    return r


def refused(client, token=..., headers=None):
    r = client.get('conversations', token=token, headers=headers)
    expect_error(r, 401)
    assert r.headers['WWW-Authenticate'].startswith('Bearer ')
    return r


def hs256(stack, claims_, **kw):
    return jwt.encode(claims_, stack.secret, algorithm='HS256', **kw)


# HS256, the shared nginx

def test_valid_hs256_token_is_accepted(tenant):
    c = tenant.client('alice')
    r = c.get('conversations')
    assert r.status == 200, r
    assert r.json == {'items': [], 'next_cursor': None}


def test_the_token_names_the_user(tenant):
    alice = tenant.client('alice', name='Alice A.')
    conv = alice.create('group', ['bob'], title='t')
    assert conv['owner_id'] == 'alice'
    members = alice.get(f'conversations/{conv["id"]}/members').json['items']
    assert {m['user_id']: m['name'] for m in members} == {
        'alice': 'Alice A.', 'bob': None}


def test_bearer_scheme_is_case_insensitive(tenant):
    c = tenant.anonymous()
    r = c.get('conversations',
              headers={'Authorization': 'bearer ' + tenant.token('alice')})
    assert r.status == 200, r


def test_no_authorization_header_is_401(tenant):
    r = refused(tenant.anonymous(), token=None)
    assert 'bearer token' in r.error[1]


def test_health_needs_no_token(tenant):
    assert tenant.anonymous().get('health').status == 200


@pytest.mark.parametrize('value', [
    'Basic YWxpY2U6c2VjcmV0',
    'Token {token}',
    'Bearer',
    'Bearer ',
    '{token}',
])
def test_not_a_bearer_header_is_401(tenant, value):
    value = value.format(token=tenant.token('alice'))
    refused(tenant.anonymous(), token=None,
            headers={'Authorization': value})


@pytest.mark.parametrize('garbage', [
    'garbage',
    'a.b.c',
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0',
    '...',
    'x' * 7000,
], ids=['word', 'three-parts', 'no-signature', 'dots', 'long'])
def test_garbage_token_is_401(tenant, garbage):
    refused(tenant.anonymous(), token=garbage)


def test_tampered_claims_are_401(stack, tenant):
    token = tenant.token('alice')
    head, _, sig = token.split('.')
    other = tenant.token('mallory').split('.')[1]
    refused(tenant.anonymous(), token=f'{head}.{other}.{sig}')


def test_alg_none_is_401(tenant):
    p = payload('alice', tid=tenant.name)
    c = tenant.anonymous()
    refused(c, token=unsigned_token(p))
    refused(c, token=unsigned_token(p, header={'alg': 'none'}))
    refused(c, token=unsigned_token(p,
                                    header={'alg': 'None', 'typ': 'JWT'}))
    # a signature stuck on an unsigned token changes nothing
    refused(c, token=unsigned_token(p) + 'c2lnbmF0dXJl')


def test_wrong_secret_is_401(tenant):
    token = jwt.encode(payload('alice', tid=tenant.name), 'x' * 64,
                       algorithm='HS256')
    refused(tenant.anonymous(), token=token)


def test_other_hmac_alg_with_the_right_secret_is_401(stack, tenant):
    # the algorithm is pinned: HS512 with the right secret is still refused
    token = jwt.encode(payload('alice', tid=tenant.name), stack.secret,
                       algorithm='HS512')
    refused(tenant.anonymous(), token=token)


def test_expired_token_is_401(tenant):
    now = int(time.time())
    c = tenant.anonymous()
    refused(c, token=tenant.token('alice', exp=now - 120))
    refused(c, token=tenant.token('alice', exp=now - 31))
    refused(c, token=tenant.token('alice', exp=0))


def test_expired_inside_the_leeway_is_accepted(tenant):
    # the default leeway is 30 s
    accepted(tenant.anonymous(),
             tenant.token('alice', exp=int(time.time()) - 10))


def test_nbf_in_the_future_is_401(tenant):
    now = int(time.time())
    refused(tenant.anonymous(), token=tenant.token('alice', nbf=now + 120))


def test_nbf_inside_the_leeway_is_accepted(tenant):
    accepted(tenant.anonymous(),
             tenant.token('alice', nbf=int(time.time()) + 10))


def test_nbf_in_the_past_is_accepted(tenant):
    accepted(tenant.anonymous(),
             tenant.token('alice', nbf=int(time.time()) - 60))


def test_nbf_not_a_number_is_401(tenant):
    refused(tenant.anonymous(), token=tenant.token('alice', nbf='soon'))


def test_missing_sub_is_401(stack, tenant):
    refused(tenant.anonymous(),
            token=hs256(stack, payload(None, tid=tenant.name)))


def test_empty_sub_is_401(stack, tenant):
    refused(tenant.anonymous(),
            token=hs256(stack, payload('', tid=tenant.name)))


@pytest.mark.parametrize('sub', [42, True, ['alice'], {'id': 'alice'}])
def test_non_string_sub_is_401(stack, tenant, sub):
    p = payload('x', tid=tenant.name)
    p['sub'] = sub
    refused(tenant.anonymous(), token=hs256(stack, p))


def test_sub_with_control_characters_is_401(stack, tenant):
    refused(tenant.anonymous(),
            token=hs256(stack, payload('ali\nce', tid=tenant.name)))


def test_sub_longer_than_128_bytes_is_401(stack, tenant):
    refused(tenant.anonymous(),
            token=hs256(stack, payload('u' * 129, tid=tenant.name)))
    accepted(tenant.anonymous(),
             hs256(stack, payload('u' * 128, tid=tenant.name)))


def test_missing_exp_is_401(stack, tenant):
    refused(tenant.anonymous(),
            token=hs256(stack, payload('alice', tid=tenant.name, exp=None)))


@pytest.mark.parametrize('exp', ['{later}', None, [1], True])
def test_exp_not_a_number_is_401(stack, tenant, exp):
    p = payload('alice', tid=tenant.name)
    later = p['exp']
    p['exp'] = exp.format(later=later) if isinstance(exp, str) else exp
    refused(tenant.anonymous(), token=hs256(stack, p))


def test_fractional_exp_is_accepted(stack, tenant):
    p = payload('alice', tid=tenant.name)
    p['exp'] = p['exp'] + 0.5
    accepted(tenant.anonymous(), hs256(stack, p))


@pytest.mark.parametrize('tid', [5, '', None])
def test_tenant_claim_not_a_string_id_is_401(stack, tenant, tid):
    p = payload('alice')
    p['tid'] = tid
    refused(tenant.anonymous(), token=hs256(stack, p))


def test_name_claim_not_a_string_is_401(tenant):
    refused(tenant.anonymous(), token=tenant.token('alice', name=7))


def test_absent_tenant_claim_is_tenant_default(stack, new_tenant):
    user = 'u-' + new_tenant().name     # unique, as "default" is shared
    no_tid = Client(stack.main.url, stack.tokens.make(user))
    conv = no_tid.create('group', ['peer'], title='in default')
    default = new_tenant('default').client(user)
    other = new_tenant().client(user)
    r = default.get(f'conversations/{conv["id"]}')
    assert r.status == 200, r
    assert r.json['title'] == 'in default'
    expect_error(other.get(f'conversations/{conv["id"]}'), 404)


def test_token_without_name_claim_is_accepted(tenant):
    c = tenant.client('alice')              # no "name" claim
    r = c.post('conversations', {'type': 'group', 'member_ids': ['bob']})
    assert r.status == 201, r
    members = c.get(f'conversations/{r.json["id"]}/members').json
    assert [(m['user_id'], m['name']) for m in members['items']] == [
        ('alice', None), ('bob', None)]


def test_a_refused_token_leaves_the_connection_usable(tenant):
    """The 401 is the whole answer: the action does not run afterwards
    (its answer would hit "header already sent" and close the
    connection)."""
    before = tenant.nginx.log_text().count('header already sent')
    c = tenant.anonymous()
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    try:
        conn.request('GET', '/api/chat/conversations',
                     headers={'Authorization': 'Bearer garbage'})
        r = conn.getresponse()
        r.read()
        assert r.status == 401
        assert r.getheader('Connection') == 'keep-alive'
        time.sleep(0.3)     # the time the action takes, if it runs
        conn.request('GET', '/api/chat/conversations',
                     headers={'Authorization':
                              'Bearer ' + tenant.token('alice')})
        r = conn.getresponse()
        assert r.status == 200
        assert json.loads(r.read()) == {'items': [], 'next_cursor': None}
    finally:
        conn.close()
    assert tenant.nginx.log_text().count('header already sent') == before


def test_a_refused_token_does_not_break_the_server(tenant):
    c = tenant.anonymous()
    for token in ('garbage', unsigned_token({'sub': 'a'}), 'x.y.z'):
        refused(c, token=token)
    assert tenant.client('alice').get('conversations').status == 200


# tenants

def test_other_tenant_cannot_see_change_or_list_a_conversation(new_tenant):
    a, b = new_tenant(), new_tenant()
    alice_a = a.client('alice')
    conv = alice_a.create('group', ['bob'], title='secret plans')
    cid = conv['id']
    alice_b = b.client('alice')             # the same user id, tenant B
    bob_b = b.client('bob')

    for c in (alice_b, bob_b):
        expect_error(c.get(f'conversations/{cid}'), 404)
        expect_error(c.patch(f'conversations/{cid}', {'title': 'pwned'}),
                     404)
        expect_error(c.patch(f'conversations/{cid}/me', {'pinned': True}),
                     404)
        expect_error(c.get(f'conversations/{cid}/members'), 404)
        expect_error(c.post(f'conversations/{cid}/members',
                            {'user_ids': ['mallory']}), 404)
        expect_error(c.patch(f'conversations/{cid}/members/bob',
                             {'role': 'admin'}), 404)
        expect_error(c.delete(f'conversations/{cid}/members/bob'), 404)
        expect_error(c.delete(f'conversations/{cid}/members/alice'), 404)
        expect_error(c.delete(f'conversations/{cid}'), 404)
        r = c.get('conversations')
        assert r.status == 200 and r.json == {'items': [],
                                               'next_cursor': None}, r
        r = c.get('conversations?archived=true')
        assert r.json['items'] == []

    # and nothing changed for tenant A
    r = alice_a.get(f'conversations/{cid}')
    assert r.status == 200
    assert r.json['title'] == 'secret plans'
    assert r.json['last_seq'] == 0 and r.json['member_count'] == 2
    assert r.json['me']['pinned'] is False
    assert r.json.get('is_archived') is False
    members = alice_a.get(f'conversations/{cid}/members').json['items']
    assert [(m['user_id'], m['role']) for m in members] == [
        ('alice', 'owner'), ('bob', 'member')]
    assert [c['id'] for c in alice_a.get('conversations').json['items']] \
        == [cid]
    assert [c['id'] for c in a.client('bob').get('conversations')
            .json['items']] == [cid]


def test_direct_conversations_are_per_tenant(new_tenant):
    a, b = new_tenant(), new_tenant()
    ra = a.client('alice').post('conversations', {
        'type': 'direct', 'member_ids': ['bob']})
    rb = b.client('alice').post('conversations', {
        'type': 'direct', 'member_ids': ['bob']})
    assert ra.status == 201 and rb.status == 201, (ra, rb)
    assert ra.json['id'] != rb.json['id']
    expect_error(b.client('bob').get(f'conversations/{ra.json["id"]}'), 404)


# pinned asymmetric algorithms: an nginx of the shared stack for each

def _public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pinned:
    """An nginx pinned to an asymmetric algorithm, with its key pair."""

    def __init__(self, stack, alg, key, other_key):
        self.alg = alg
        self.private = _private_pem(key)
        self.public = _public_pem(key)
        self.other_private = _private_pem(other_key)
        pem = stack.root / f'{alg.lower()}.pub.pem'
        pem.write_bytes(self.public)
        self.nginx = stack.nginx(name=alg.lower(),
                                 JWT_KEY=f'file={pem} alg={alg}')
        self.client = Client(self.nginx.url)
        self.tenant = 't-' + alg.lower() + '-' + str(time.time_ns())

    def claims(self, user='alice'):
        return payload(user, tid=self.tenant)

    def token(self, user='alice', key=None, alg=None):
        return jwt.encode(self.claims(user), key or self.private,
                          algorithm=alg or self.alg)

    def confusion_tokens(self):
        """HS256 tokens whose HMAC secret is the text of the public key
        PEM: as the file is, and as the server keeps it (without the final
        newline)."""
        return [hmac_token(self.claims(), secret)
                for secret in (self.public, self.public.rstrip(b'\n'))]


@pytest.fixture(scope='module')
def rs256(stack):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = Pinned(stack, 'RS256', key, other)
    yield p
    p.nginx.stop()


@pytest.fixture(scope='module')
def es256(stack):
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    p = Pinned(stack, 'ES256', key, other)
    yield p
    p.nginx.stop()


def test_rs256_token_is_accepted(rs256):
    r = rs256.client.post('conversations', {'type': 'group', 'title': 'rs'},
                          token=rs256.token())
    assert r.status == 201, r
    r = rs256.client.get(f'conversations/{r.json["id"]}',
                         token=rs256.token())
    assert r.status == 200 and r.json['owner_id'] == 'alice', r


def test_rs256_algorithm_confusion_is_401(rs256):
    for token in rs256.confusion_tokens():
        refused(rs256.client, token=token)


def test_rs256_token_signed_by_another_key_is_401(rs256):
    refused(rs256.client, token=rs256.token(key=rs256.other_private))


def test_rs256_alg_none_is_401(rs256):
    refused(rs256.client, token=unsigned_token(rs256.claims()))


def test_rs256_other_rsa_alg_with_the_right_key_is_401(rs256):
    refused(rs256.client, token=rs256.token(alg='RS512'))


def test_rs256_hs256_token_of_the_hmac_stack_is_401(stack, rs256):
    refused(rs256.client, token=jwt.encode(rs256.claims(), stack.secret,
                                           algorithm='HS256'))


def test_rs256_expired_token_is_401(rs256):
    p = rs256.claims()
    p['exp'] = int(time.time()) - 120
    refused(rs256.client, token=jwt.encode(p, rs256.private,
                                           algorithm='RS256'))


def test_es256_token_is_accepted(es256):
    r = es256.client.post('conversations', {'type': 'group', 'title': 'es'},
                          token=es256.token())
    assert r.status == 201, r


def test_es256_algorithm_confusion_is_401(es256):
    for token in es256.confusion_tokens():
        refused(es256.client, token=token)


def test_es256_token_signed_by_another_key_is_401(es256):
    refused(es256.client, token=es256.token(key=es256.other_private))


def test_es256_alg_none_is_401(es256):
    refused(es256.client, token=unsigned_token(es256.claims()))


# every route needs a token

def _route_table(cid, mid):
    """(method, path, body) of every route of src/ngx_chat_routes.c but
    health, with real ids and a body the action would take."""
    c, m = f'conversations/{cid}', f'conversations/{cid}/messages/{mid}'
    return [
        ('POST', 'conversations', {'type': 'group', 'title': 'x'}),
        ('GET', 'conversations', None),
        ('GET', c, None),
        ('PATCH', c, {'title': 'pwned'}),
        ('DELETE', c, None),
        ('PATCH', f'{c}/me', {'pinned': True}),
        ('GET', f'{c}/members', None),
        ('POST', f'{c}/members', {'user_ids': ['mallory']}),
        ('PATCH', f'{c}/members/bob', {'role': 'admin'}),
        ('DELETE', f'{c}/members/bob', None),
        ('POST', f'{c}/read', {}),
        ('GET', 'unread', None),
        ('POST', f'{c}/messages', {'content': 'sneaky'}),
        ('GET', f'{c}/messages', None),
        ('GET', m, None),
        ('PATCH', m, {'content': 'pwned'}),
        ('DELETE', m, None),
        ('POST', f'{m}/pin', None),
        ('DELETE', f'{m}/pin', None),
        ('GET', f'{c}/pins', None),
        ('POST', f'{m}/reactions', {'emoji': 'ok'}),
        ('DELETE', f'{m}/reactions/ok', None),
        ('GET', f'{m}/receipts', None),
        ('POST', f'{m}/forward', {'conversation_id': cid}),
        ('GET', 'search?q=hello', None),
        ('POST', f'{c}/typing', {'is_typing': True}),
        ('GET', 'presence?user_ids=bob', None),
        ('PUT', 'presence/me', {'status': 'busy'}),
    ]


@pytest.mark.parametrize('token', [None, 'garbage'],
                         ids=['no-authorization', 'bearer-garbage'])
def test_every_route_of_the_table_without_a_valid_token_is_401(tenant,
                                                                token):
    # read from src/ngx_chat_requests.c itself, so that a route added
    # later is checked too (the list below checks what each changes)
    from test_openapi import parse_requests
    anon = tenant.anonymous()
    routes = [r for r in parse_requests()
              if 'NGX_CHAT_R_PUBLIC' not in r['flags']]
    assert len(routes) >= 45
    for route in routes:
        path = re.sub(r'#\w+', '1', re.sub(r':\w+', 'x', route['pattern']))
        body = {} if route['method'] in ('POST', 'PUT', 'PATCH') else None
        r = anon.request(route['method'], path, body, token=token)
        expect_error(r, 401)
        assert r.headers['WWW-Authenticate'] == 'Bearer realm="chat"', \
            (route['method'], path, r)


@pytest.mark.parametrize('token', [None, 'garbage'],
                         ids=['no-authorization', 'bearer-garbage'])
def test_every_route_without_a_valid_token_is_401(tenant, token):
    alice = tenant.client('alice')
    conv = alice.create('group', ['bob'], title='kept')
    cid = conv['id']
    r = alice.post(f'conversations/{cid}/messages', {'content': 'hello'})
    assert r.status == 201, r
    mid = r.json['id']
    assert alice.post(f'conversations/{cid}/messages/{mid}/reactions',
                      {'emoji': 'ok'}).status == 200
    anon = tenant.anonymous()
    routes = _route_table(cid, mid)
    assert len(routes) == 28                # all but health
    for method, path, body in routes:
        r = anon.request(method, path, body, token=token)
        expect_error(r, 401)
        assert r.headers['WWW-Authenticate'] == 'Bearer realm="chat"', \
            (method, path, r)
        assert r.error[1] == ('a bearer token is required' if token is None
                              else 'the token is invalid'), (method, path, r)
    # nothing ran
    after = alice.get(f'conversations/{cid}').json
    assert (after['title'], after['last_seq'], after['member_count']) == \
        ('kept', 2, 2)
    assert after['is_archived'] is False and after['me']['pinned'] is False
    m = alice.get(f'conversations/{cid}/messages/{mid}').json
    assert (m['content'], m['is_deleted'], m['is_pinned']) == \
        ('hello', False, False)
    assert m['reactions'] == [{'emoji': 'ok', 'count': 1, 'me': True}]
    assert [c['id'] for c in alice.get('conversations').json['items']] \
        == [cid]
    members = alice.get(f'conversations/{cid}/members').json['items']
    assert [(u['user_id'], u['role']) for u in members] == [
        ('alice', 'owner'), ('bob', 'member')]


def test_a_refused_post_with_a_body_leaves_the_connection_usable(tenant):
    """The body of a refused request is read and dropped: the next request
    on the connection is parsed from its own first byte."""
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    path = f'/api/chat/conversations/{cid}/messages'
    conn = http.client.HTTPConnection(alice.host, alice.port, timeout=10)
    try:
        # the body holds what would be a request of its own if it were
        # read as the next one
        body = json.dumps({'content': 'x' * 12000 + ' GET / HTTP/1.1\r\n'})
        conn.request('POST', path, body=body,
                     headers={'Authorization': 'Bearer garbage',
                              'Content-Type': 'application/json'})
        r = conn.getresponse()
        err = json.loads(r.read())
        assert r.status == 401
        assert r.getheader('WWW-Authenticate') == 'Bearer realm="chat"'
        assert err['error']['code'] == 'unauthorized'
        assert r.getheader('Connection') == 'keep-alive'
        conn.request('POST', path, body=json.dumps({'content': 'good'}),
                     headers={'Authorization': 'Bearer ' + alice.token,
                              'Content-Type': 'application/json'})
        r = conn.getresponse()
        msg = json.loads(r.read())
        assert r.status == 201, msg
        assert msg['content'] == 'good' and msg['seq'] == 1
    finally:
        conn.close()
    assert alice.get(f'conversations/{cid}').json['last_seq'] == 1


# strict tokens and the class of a refusal (docs/security.md)

def because(r, reason):
    """r is a 401 whose error object names the class of the refusal."""
    expect_error(r, 401)
    err = r.json['error']
    assert err.get('reason') == reason, r
    return err


def refused_because(client, token, reason, secret=None):
    r = client.get('conversations', token=token)
    err = because(r, reason)
    # a refusal never holds the key nor the token
    for key in filter(None, [secret]):
        key = key.decode() if isinstance(key, bytes) else key
        assert key not in r.body, r
    for part in (token or '').split('.'):
        assert len(part) < 8 or part not in r.body, r
    return err


def raw_token(header, payload, secret):
    """An HS256 token of JSON texts as they are: duplicate members stay."""
    def enc(text):
        return b64url(text.encode())
    signing_input = f'{enc(header)}.{enc(payload)}'
    sig = hmac.new(secret.encode(), signing_input.encode(),
                   hashlib.sha256).digest()
    return f'{signing_input}.{b64url(sig)}'


HS256_HEADER = '{"alg": "HS256", "typ": "JWT"}'


def body_of(tenant, sub='alice', **extra):
    p = payload(sub, tid=tenant.name, **extra)
    return json.dumps(p)[:-1]      # open, for members added by hand


def test_a_refused_token_names_its_class(stack, tenant):
    c = tenant.anonymous()
    now = int(time.time())
    p = payload('alice', tid=tenant.name)
    secret = stack.secret
    cases = [
        (None, 'missing_token'),
        ('garbage', 'malformed'),
        ('a.b.c', 'malformed'),
        (hs256(stack, p) + '.x', 'malformed'),
        (jwt.encode(p, 'x' * 64, algorithm='HS256'), 'bad_signature'),
        (hs256(stack, p)[:-4] + 'AAAA', 'bad_signature'),
        (jwt.encode(p, secret, algorithm='HS512'), 'algorithm_not_allowed'),
        (unsigned_token(p), 'algorithm_not_allowed'),
        (unsigned_token(p, header={'alg': 'None', 'typ': 'JWT'}),
         'algorithm_not_allowed'),
        (hmac_token(p, secret, header={'alg': 'hs256', 'typ': 'JWT'}),
         'algorithm_not_allowed'),
        (tenant.token('alice', exp=now - 120), 'expired'),
        (tenant.token('alice', nbf=now + 120), 'not_yet_valid'),
        (hs256(stack, payload('alice', tid=tenant.name, exp=None)),
         'missing_claim'),
        (hs256(stack, payload(None, tid=tenant.name)), 'missing_claim'),
        (tenant.token('alice', nbf='soon'), 'invalid_claim'),
        (hs256(stack, payload('ali\nce', tid=tenant.name)), 'invalid_claim'),
        (tenant.token('alice', name=7), 'invalid_claim'),
        (hmac_token(p, secret, header={'alg': 'HS256', 'crit': ['exp'],
                                       'exp': now + 60}),
         'unsupported_extension'),
    ]
    for token, reason in cases:
        refused_because(c, token, reason, secret=secret)


def test_the_401_of_a_missing_token_says_so(tenant):
    err = because(tenant.anonymous().get('conversations', token=None),
                  'missing_token')
    assert err['message'] == 'a bearer token is required'
    r = tenant.anonymous().get('conversations', token=None,
                               headers={'Authorization': 'Basic YTpi'})
    because(r, 'missing_token')


def test_a_header_with_crit_is_401(stack, tenant):
    """RFC 7515 4.1.11: a critical extension we do not understand (we
    understand none) makes the token invalid, signed or not."""
    p = payload('alice', tid=tenant.name)
    c = tenant.anonymous()
    for header in ({'alg': 'HS256', 'typ': 'JWT', 'crit': ['exp'],
                    'exp': int(time.time()) + 60},
                   {'alg': 'HS256', 'crit': ['b64'], 'b64': False},
                   {'alg': 'HS256', 'crit': []}):
        refused_because(c, hmac_token(p, stack.secret, header=header),
                        'unsupported_extension')
    accepted(c, hmac_token(p, stack.secret,
                           header={'alg': 'HS256', 'typ': 'JWT',
                                   'kid': 'key-1'}))


@pytest.mark.parametrize('dup', ['sub', 'tid', 'exp', 'nested'])
def test_a_payload_with_duplicate_members_is_401(stack, tenant, dup):
    """jansson keeps the last of two members silently: a token whose
    reader sees one "sub" must not be taken for another."""
    extra = {'sub': '"mallory"', 'tid': '"t-other"',
             'exp': str(int(time.time()) - 3600),
             'nested': '"x": {"a": 1, "a": 2}'}[dup]
    member = extra if dup == 'nested' else f'"{dup}": {extra}'
    token = raw_token(HS256_HEADER, body_of(tenant) + f', {member}}}',
                      stack.secret)
    refused_because(tenant.anonymous(), token, 'malformed')
    # the same token without the second member passes
    accepted(tenant.anonymous(),
             raw_token(HS256_HEADER, body_of(tenant) + '}', stack.secret))


def test_a_header_with_duplicate_members_is_401(stack, tenant):
    token = raw_token('{"alg": "none", "alg": "HS256", "typ": "JWT"}',
                      body_of(tenant) + '}', stack.secret)
    refused_because(tenant.anonymous(), token, 'malformed')


@pytest.mark.parametrize('sub', [
    'al\u0085ice', '\u0080', 'a\u009f', 'ali\u200bce', 'ali\u200dce',
    '\u200ealice', '\u202eecila', 'a\u2066b\u2069', '\ufeffalice',
    'ali\u00adce', 'a\u00a0b', 'a\u2028b', 'a\u3000b', ' alice', 'alice ',
    'a\ufffe', 'a\U000e0041',
], ids=lambda s: s.encode('unicode_escape').decode())
def test_ids_with_controls_invisible_or_bidi_characters_are_401(
        stack, tenant, sub):
    c = tenant.anonymous()
    refused_because(c, hs256(stack, payload(sub, tid=tenant.name)),
                    'invalid_claim')
    refused_because(c, hs256(stack, payload('alice', tid=sub)),
                    'invalid_claim')


def test_ids_of_any_script_with_inner_spaces_are_accepted(stack, tenant):
    c = tenant.anonymous()
    for sub in ('Zo\u00eb Smith', '\u7528\u6237', 'a@b.example',
                '\U0001f600', '\u00e9' * 64):
        r = c.get('conversations',
                  token=hs256(stack, payload(sub, tid=tenant.name)))
        assert r.status == 200, (sub, r)
    r = c.get('conversations',
              token=hs256(stack, payload('\u00e9' * 64 + 'a',
                                         tid=tenant.name)))
    because(r, 'invalid_claim')


def test_rs256_refusals_name_their_class(rs256):
    for token in rs256.confusion_tokens():
        refused_because(rs256.client, token, 'algorithm_not_allowed',
                        secret=rs256.public)
    refused_because(rs256.client, rs256.token(key=rs256.other_private),
                    'bad_signature', secret=rs256.public)
    refused_because(rs256.client, rs256.token(alg='RS512'),
                    'algorithm_not_allowed')
    refused_because(rs256.client, unsigned_token(rs256.claims()),
                    'algorithm_not_allowed')


# tokens never reach a log

def _access_log(ng):
    try:
        return (ng.prefix / 'logs' / 'access.log').read_text(
            errors='replace')
    except OSError:
        return ''


def wait_logged(ng, text, timeout=5):
    """The access log, once it holds text (a line is written as the request
    ends, which may be just after the client has its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        log = _access_log(ng)
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def assert_not_logged(ng, *tokens):
    logs = _access_log(ng) + ng.log_text()
    for token in tokens:
        for part in token.split('.')[1:]:
            if len(part) >= 8:
                assert part not in logs, f'{part[:12]}... is in a log'


def test_access_token_in_a_rest_query_is_not_logged(stack, tenant):
    ng = tenant.nginx
    good = tenant.token('logged-rest')
    bad = tenant.token('logged-rest-2')[:-6] + 'AAAAAA'
    marker = 'm' + str(time.time_ns())
    alice = tenant.client('alice')
    anon = tenant.anonymous()

    # a client that sends its token in the query too, with a valid header
    r = alice.get(f'conversations?{marker}=1&access_token={good}&x=2')
    assert r.status == 200, r
    # without a header: the query's token is not taken
    because(anon.get(f'conversations?access_token={good}&{marker}=2'),
            'missing_token')
    # a bad header token: its refusal is logged with the request line
    r = anon.get(f'conversations?{marker}=3&ACCESS_TOKEN={bad}', token=bad)
    because(r, 'bad_signature')
    # no such route; twice in one query; ";" between arguments
    expect_error(anon.get(f'nowhere?access_token={good}&{marker}=4'), 404)
    r = alice.get(f'conversations?access_token={good}&access_token={bad}'
                  f'&{marker}=5')
    assert r.status == 200, r
    r = alice.get(f'conversations?{marker}=6;access_token={good}')
    assert r.status == 200, r

    for n in range(1, 7):
        log = wait_logged(ng, f'{marker}={n}')
    for line in (f'?{marker}=1&access_token=[redacted]&x=2 HTTP/1.1',
                 f'?access_token=[redacted]&{marker}=2 HTTP/1.1',
                 f'?{marker}=3&ACCESS_TOKEN=[redacted] HTTP/1.1',
                 f'nowhere?access_token=[redacted]&{marker}=4 HTTP/1.1',
                 f'?access_token=[redacted]&access_token=[redacted]'
                 f'&{marker}=5 HTTP/1.1',
                 f'?{marker}=6;access_token=[redacted] HTTP/1.1'):
        assert line in log, line
    # the refusal's line in the error log has the request, hidden
    assert any(f'{marker}=3&ACCESS_TOKEN=[redacted]' in line
               and 'bad signature' in line
               for line in ng.log_text().splitlines())
    assert_not_logged(ng, good, bad)


def test_a_safe_log_format_hides_the_token_in_each_variable(stack, tenant):
    """$request, $request_uri, $args and $query_string as the log sees
    them; $arg_access_token too."""
    path = stack.root / 'log-vars' / 'logs' / 'vars.log'    # its prefix
    ng = stack.nginx(name='log-vars', EXTRA=(
        'log_format vars "req=$request uri=$request_uri args=$args '
        'qs=$query_string arg=$arg_access_token"; '
        f'access_log {path} vars;'))
    try:
        c = Client(ng.url, tenant.token('alice'))
        token = tenant.token('vars')
        r = c.get(f'conversations?a=1&access_token={token}')
        assert r.status == 200, r
        deadline = time.monotonic() + 5
        while 'args=a=1' not in (path.read_text() if path.exists() else ''):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        line = [line for line in path.read_text().splitlines()
                if 'args=a=1' in line][0]
        assert ('req=GET /api/chat/conversations?a=1&access_token=[redacted]'
                ' HTTP/1.1 ') in line, line
        assert ('uri=/api/chat/conversations?a=1&access_token=[redacted] '
                in line), line
        assert 'args=a=1&access_token=[redacted] ' in line, line
        assert 'qs=a=1&access_token=[redacted] ' in line, line
        assert 'arg=[redacted]' in line, line
        assert_not_logged(ng, token)
        assert token.split('.')[2] not in line
    finally:
        ng.stop()
