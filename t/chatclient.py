"""What the tests talk to ngx_chat with: tokens, an HTTP client.

Standard library plus Debian's python3-jwt and python3-cryptography; run
under /usr/bin/python3.
"""

import base64
import http.client
import json
import time
import urllib.parse

import jwt


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

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


class Client:
    """One user of one tenant, talking to one nginx over HTTP/1.1."""

    def __init__(self, base_url, token=None, prefix='/api/chat/'):
        url = urllib.parse.urlsplit(base_url)
        self.host = url.hostname
        self.port = url.port
        self.prefix = prefix
        self.token = token

    def request(self, method, path, body=None, headers=None, raw=None,
                token=..., timeout=30):
        """body is sent as JSON, raw as it is; path is below the prefix."""
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
            conn.request(method, self.prefix + path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()),
                            resp.read().decode())
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
