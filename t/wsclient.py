"""A WebSocket client written by hand, so tests control every byte.

Frames can be sent masked or not, fragmented, with reserved bits or
opcodes set: what a conforming library would never do is what the tests
need to send.  Standard library only.
"""

import base64
import hashlib
import json
import os
import select
import socket
import struct
import time

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed: code and reason of its close frame (or None)."""

    def __init__(self, code=None, reason=''):
        super().__init__(f'closed {code} {reason}')
        self.code = code
        self.reason = reason


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f'handshake refused: {status} {body[:200]!r}')
        self.status = status
        self.headers = headers
        self.body = body


class WS:
    def __init__(self, port, token=None, path='/ws/chat', headers=None,
                 protocols=None, query=None, host='127.0.0.1', timeout=10,
                 source=None):
        self.port = port
        self.token = token
        self.path = path
        self.extra = headers or {}
        self.protocols = protocols
        self.query = query
        self.host = host
        self.timeout = timeout
        self.source = source
        self.sock = None
        self.buf = b''
        self.response_headers = {}
        self.close_frame = None

    # the handshake

    def connect(self):
        self.sock = socket.create_connection(
            (self.host, self.port), timeout=self.timeout,
            source_address=(self.source, 0) if self.source else None)
        key = base64.b64encode(os.urandom(16)).decode()
        path = self.path + (f'?{self.query}' if self.query else '')
        lines = [f'GET {path} HTTP/1.1', f'Host: {self.host}:{self.port}',
                 'Upgrade: websocket', 'Connection: Upgrade',
                 f'Sec-WebSocket-Key: {key}', 'Sec-WebSocket-Version: 13']
        if self.token:
            lines.append(f'Authorization: Bearer {self.token}')
        if self.protocols:
            lines.append('Sec-WebSocket-Protocol: ' + ', '.join(self.protocols))
        for k, v in self.extra.items():
            if v is None:
                lines = [x for x in lines if not x.lower().startswith(
                    k.lower() + ':')]
            else:
                lines = [x for x in lines if not x.lower().startswith(
                    k.lower() + ':')] + [f'{k}: {v}']
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())

        head = self._read_until(b'\r\n\r\n')
        status_line, *header_lines = head.decode('latin-1').split('\r\n')
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            if ':' in line:
                k, v = line.split(':', 1)
                headers[k.strip().lower()] = v.strip()
        self.response_headers = headers
        if status != 101:
            body = self.buf
            length = int(headers.get('content-length', 0))
            while len(body) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.sock.close()
            raise HandshakeRefused(status, headers, body.decode(errors='replace'))
        expect = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        assert headers.get('sec-websocket-accept') == expect.decode(), headers
        return self

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed()
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    # frames

    def send_frame(self, opcode, payload=b'', fin=True, mask=True, rsv=0,
                   length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
        bit = 0x80 if mask else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack('!H', n)
        else:
            head += bytes([bit | 127]) + struct.pack('!Q', n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_json(self, obj):
        self.send_frame(TEXT, json.dumps(obj))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no frame from the server')
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise Closed(*(self.close_frame or (None, '')))
            self.buf += chunk

    def recv_frame(self, timeout=None):
        """(fin, opcode, payload) of the next frame."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, 'the server masked a frame'
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._fill(4, deadline)
            n, off = struct.unpack('!H', self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, deadline)
            n, off = struct.unpack('!Q', self.buf[2:10])[0], 10
        self._fill(off + n, deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, timeout=None):
        """The next JSON message; answers pings; raises Closed on close."""
        while True:
            fin, op, payload = self.recv_frame(timeout)
            if op == PING:
                self.send_frame(PONG, payload)
                continue
            if op == CLOSE:
                code = struct.unpack('!H', payload[:2])[0] if payload else None
                self.close_frame = (code, payload[2:].decode(errors='replace'))
                raise Closed(*self.close_frame)
            if op == TEXT:
                return json.loads(payload)

    def expect(self, type, timeout=None, **match):
        """The next message of a type (others are skipped and kept)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no {type} message')
            m = self.recv(left)
            if m.get('type') == type and all(m.get(k) == v
                                             for k, v in match.items()):
                return m

    def drain(self, timeout=0.3):
        """Every message that arrives until none comes for a while."""
        out = []
        while True:
            try:
                out.append(self.recv(timeout))
            except TimeoutError:
                return out

    def close_code(self, timeout=None):
        """Reads until the server's close frame; returns its code."""
        try:
            while True:
                self.recv(timeout)
        except Closed as e:
            return e.code

    def close(self, code=1000):
        try:
            self.send_frame(CLOSE, struct.pack('!H', code))
        except OSError:
            pass
        self.sock.close()
