"""What the tests talk to ngx_chat with: tokens, an HTTP client.

Standard library plus Debian's python3-jwt and python3-cryptography; run
under /usr/bin/python3.
"""

import base64
import hashlib
import hmac
import http.client
import json
import re
import time
import urllib.parse

import jwt


class Response:
    def __init__(self, status, headers, body, data=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.data = data        # the body's bytes, for downloads

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def error(self):
        """(code, message) of an error answer."""
        e = self.json['error']
        return e['code'], e['message']

    def __repr__(self):
        return f'<{self.status} {self.body[:300]!r}>'


class Tokens:
    """Mints tokens the way an identity provider would."""

    def __init__(self, key, alg='HS256', tenant_claim='tid'):
        self.key = key
        self.alg = alg
        self.tenant_claim = tenant_claim

    def make(self, sub, tenant=None, ttl=3600, name=None, **claims):
        now = int(time.time())
        payload = {'sub': sub, 'iat': now, 'exp': now + ttl}
        if tenant is not None:
            payload[self.tenant_claim] = tenant
        if name is not None:
            payload['name'] = name
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.key, algorithm=self.alg)


def b64url(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data).encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def unsigned_token(claims, header=None):
    """A token with alg "none": it must never be accepted."""
    header = header or {'alg': 'none', 'typ': 'JWT'}
    return f'{b64url(header)}.{b64url(claims)}.'


def hmac_token(claims, secret, alg='HS256', header=None):
    """An HMAC token signed by hand with any bytes as the secret.

    PyJWT refuses a PEM public key as an HMAC secret; an attacker does not:
    this is how the algorithm-confusion token is made.
    """
    digest = {'HS256': hashlib.sha256, 'HS384': hashlib.sha384,
              'HS512': hashlib.sha512}[alg]
    if isinstance(secret, str):
        secret = secret.encode()
    header = header or {'alg': alg, 'typ': 'JWT'}
    signing_input = f'{b64url(header)}.{b64url(claims)}'
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f'{signing_input}.{b64url(sig)}'


def claims(sub, ttl=3600, **extra):
    """A claims dict as Tokens.make builds it; None values are dropped."""
    now = int(time.time())
    payload = {'sub': sub, 'iat': now, 'exp': now + ttl}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not None}


# the error code of each status (API.md section 2)
ERROR_CODES = {
    400: 'bad_request', 401: 'unauthorized', 403: 'forbidden',
    404: 'not_found', 405: 'method_not_allowed', 409: 'conflict',
    410: 'gone', 413: 'payload_too_large', 415: 'unsupported_media_type',
    429: 'rate_limited', 503: 'unavailable', 507: 'insufficient_storage',
}

TIMESTAMP = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')


def expect_error(r, status, message=None):
    """r is an error answer of that status in the shape of API.md section 2.

    message, when given, must occur in the error message (e.g. the name of
    the field at fault).  Returns the message.
    """
    assert r.status == status, r
    assert r.headers.get('Content-Type', '').startswith('application/json'), r
    body = r.json
    assert isinstance(body, dict) and set(body) == {'error'}, r
    err = body['error']
    # a refusal that will pass says when to try again, as Retry-After does
    keys = {'code', 'message'} | ({'retry_after'} if status in (429, 503)
                                   else set())
    # a refused token says its class (docs/security.md), never the key
    if status == 401 and isinstance(err, dict) and 'reason' in err:
        keys.add('reason')
    assert isinstance(err, dict) and set(err) == keys, r
    assert err['code'] == ERROR_CODES[status], r
    assert isinstance(err['message'], str) and err['message'], r
    if message is not None:
        assert message in err['message'], r
    if status in (429, 503):
        assert int(r.headers['Retry-After']) >= 1, r
        assert err['retry_after'] == int(r.headers['Retry-After']), r
    if status == 401:
        assert r.headers['WWW-Authenticate'].startswith('Bearer'), r
    return err['message']


class Client:
    """One user of one tenant, talking to one nginx over HTTP/1.1."""

    def __init__(self, base_url, token=None, prefix='/api/chat/'):
        url = urllib.parse.urlsplit(base_url)
        self.host = url.hostname
        self.port = url.port
        self.prefix = prefix
        self.token = token

    def request(self, method, path, body=None, headers=None, raw=None,
                token=..., timeout=30, chunked=False):
        """body is sent as JSON, raw as it is; path is below the prefix.

        With chunked, the body goes with Transfer-Encoding: chunked.
        """
        hdrs = {}
        token = self.token if token is ... else token
        if token:
            hdrs['Authorization'] = f'Bearer {token}'
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs['Content-Type'] = 'application/json'
        if isinstance(data, str):
            data = data.encode()
        if data is not None and 'Content-Type' not in hdrs:
            hdrs['Content-Type'] = 'application/json'
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        conn = http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)
        try:
            if chunked and data is not None:
                step = 64 * 1024
                chunks = [data[i:i + step] for i in range(0, len(data), step)]
                conn.request(method, self.prefix + path, body=iter(chunks),
                             headers=hdrs, encode_chunked=True)
            else:
                conn.request(method, self.prefix + path, body=data,
                             headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, dict(resp.getheaders()),
                            data.decode(errors='replace'), data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, body=None, **kw):
        return self.request('POST', path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request('PATCH', path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request('PUT', path, body, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)

    # shorthands for what many tests set up

    def create(self, type='group', members=(), **fields):
        r = self.post('conversations', dict(type=type,
                                            member_ids=list(members),
                                            **fields))
        assert r.status in (200, 201), r
        return r.json
