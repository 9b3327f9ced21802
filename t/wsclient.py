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
import ssl
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
    """One WebSocket connection.  The handshake may carry bytes right
    behind it (tail), and the socket may get a small receive buffer before
    it connects (rcvbuf)."""

    def __init__(self, port, token=None, path='/ws/chat', headers=None,
                 protocols=None, query=None, host='127.0.0.1', timeout=10,
                 source=None, rcvbuf=None, tail=b'', tls=False):
        self.port = port
        self.token = token
        self.path = path
        self.extra = headers or {}
        self.protocols = protocols
        self.query = query
        self.host = host
        self.timeout = timeout
        self.source = source
        self.rcvbuf = rcvbuf
        self.tail = tail
        self.tls = tls
        self.sock = None
        self.buf = b''
        self.response_headers = {}
        self.close_frame = None

    # the handshake

    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 self.rcvbuf)
        self.sock.settimeout(self.timeout)
        if self.source:
            self.sock.bind((self.source, 0))
        self.sock.connect((self.host, self.port))
        if self.tls:
            # the tests' own certificate: the channel, not the peer, is tested
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        key = base64.b64encode(os.urandom(16)).decode()
        path = self.path + (f'?{self.query}' if self.query else '')
        headers = {'Host': f'{self.host}:{self.port}', 'Upgrade': 'websocket',
                   'Connection': 'Upgrade', 'Sec-WebSocket-Key': key,
                   'Sec-WebSocket-Version': '13'}
        if self.token:
            headers['Authorization'] = f'Bearer {self.token}'
        if self.protocols:
            headers['Sec-WebSocket-Protocol'] = ', '.join(self.protocols)
        for k, v in self.extra.items():
            for old in [h for h in headers if h.lower() == k.lower()]:
                del headers[old]
            if v is not None:
                headers[k] = v
        request = f'GET {path} HTTP/1.1\r\n' + ''.join(
            f'{k}: {v}\r\n' for k, v in headers.items()) + '\r\n'
        self.sock.sendall(request.encode() + self.tail)

        head = self._read_until(b'\r\n\r\n')
        status_line, *header_lines = head.decode('latin-1').split('\r\n')
        status = int(status_line.split()[1])
        hdrs = {}
        for line in header_lines:
            if ':' in line:
                k, v = line.split(':', 1)
                hdrs[k.strip().lower()] = v.strip()
        self.response_headers = hdrs
        self.status_line = status_line
        if status != 101:
            body = self.buf
            length = int(hdrs.get('content-length', 0))
            while len(body) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.sock.close()
            raise HandshakeRefused(status, hdrs, body.decode(errors='replace'))
        expect = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        assert hdrs.get('sec-websocket-accept') == expect.decode(), hdrs
        return self

    def _pending(self):
        """Bytes TLS has decrypted already: select() cannot see them."""
        return self.tls and self.sock.pending()

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
            if not self._pending():
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


# Additions for the WebSocket tests of issue 4 (t/test_ws_*.py): raw frame
# bytes, a client that keeps what it receives, several clients read at
# once, and which nginx worker holds a connection.

def frame_bytes(opcode, payload=b'', fin=True, mask=True, rsv=0, length=None,
                length_form=None):
    """The bytes of one client frame.  length overrides the length field;
    length_form (7, 16 or 64) forces an encoding of it, minimal or not."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head += bytes([bit | n])
    elif form == 16:
        head += bytes([bit | 126]) + struct.pack('!H', n)
    else:
        head += bytes([bit | 127]) + struct.pack('!Q', n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def close_payload(code, reason=b''):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack('!H', code) + reason


class ChatWS(WS):
    """A WS that reads hello on connect and keeps every message it gets.

    log: every JSON message received, in order.  closed: (code, reason)
    of the server's close frame; eof: the server closed TCP.  pings: the
    server's ping frames, answered unless answer_pings is False.
    """

    _reqs = 0

    def __init__(self, port, token=None, hello=True, **kw):
        super().__init__(port, token, **kw)
        self.want_hello = hello
        self.hello = None
        self.log = []
        self.closed = None
        self.eof = False
        self.answer_pings = True
        self.pings = 0

    def connect(self):
        super().connect()
        if self.want_hello:
            self.hello = self.recv()
            assert self.hello.get('type') == 'hello', self.hello
        return self

    # receiving, keeping everything

    def recv(self, timeout=None):
        try:
            m = super().recv(timeout)
        except Closed:
            self.closed = self.close_frame
            raise
        self.log.append(m)
        return m

    def _complete_frame(self):
        b = self.buf
        if len(b) < 2:
            return False
        n, off = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return False
            n, off = struct.unpack('!H', b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return False
            n, off = struct.unpack('!Q', b[2:10])[0], 10
        return len(b) >= off + n

    def poll(self):
        """Reads what is there without waiting; returns the new messages."""
        new = []
        if self.eof:
            return new
        while True:
            try:
                if not self._pending():
                    r, _, _ = select.select([self.sock], [], [], 0)
                    if not r:
                        break
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b''
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        while self.closed is None and self._complete_frame():
            fin, op, payload = self.recv_frame(1)
            if op == PING:
                self.pings += 1
                if self.answer_pings:
                    self.send_frame(PONG, payload)
            elif op == CLOSE:
                code = struct.unpack('!H', payload[:2])[0] if payload else None
                self.close_frame = (code,
                                    payload[2:].decode(errors='replace'))
                self.closed = self.close_frame
            elif op == TEXT:
                m = json.loads(payload)
                self.log.append(m)
                new.append(m)
        return new

    def wait(self, pred, timeout=10, what='a message'):
        """The first message from now on for which pred holds."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.poll():
                if pred(m):
                    return m
            if self.closed is not None:
                raise Closed(*self.closed)
            if self.eof:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no {what} within {timeout}s')
            select.select([self.sock], [], [], min(left, 0.05))

    def until(self, cond, timeout=10, what='the condition'):
        """Reads until cond() holds (it looks at log, closed or eof)."""
        pump([self], cond, timeout, what)

    def request(self, type, timeout=10, **fields):
        """Sends a client message with a fresh req; returns its answer."""
        ChatWS._reqs += 1
        req = f'r{ChatWS._reqs}'
        self.send_json(dict(type=type, req=req, **fields))
        return self.wait(lambda m: m.get('req') == req and m.get('type') in
                         ('ack', 'error', 'pong', 'resumed'), timeout,
                         f'answer to {type}')

    def start(self, conversations=None, timeout=10):
        """resume (all at connect-time seqs by default); waits for resumed."""
        m = self.request('resume', timeout, conversations=conversations or {})
        assert m['type'] == 'resumed', m
        return m

    # what was received

    def events(self, conversation_id):
        """The conversation's events with a seq, in the order received (a
        read_receipt's seq is the reader's position, not its own)."""
        return [m for m in self.log if m.get('conversation_id') ==
                conversation_id and m.get('seq') is not None and
                m.get('type') != 'read_receipt']

    def seqs(self, conversation_id):
        return [m['seq'] for m in self.events(conversation_id)]

    def of_type(self, type, conversation_id=None):
        return [m for m in self.log if m.get('type') == type and (
            conversation_id is None or m.get('conversation_id') ==
            conversation_id)]

    def wait_closed(self, timeout=10):
        """Reads until the server's close frame; returns its code."""
        self.until(lambda: self.closed is not None or self.eof, timeout,
                   'a close frame')
        return self.closed[0] if self.closed else None

    def tcp_closed(self, timeout=5):
        """True once the server has closed the TCP connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    return True
                if not chunk:
                    return True
        return False


def pump(clients, cond, timeout=10, what='the condition'):
    """Reads every client (answering pings) until cond() holds."""
    deadline = time.monotonic() + timeout
    while True:
        for c in clients:
            c.poll()
        if cond():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f'{what}: not within {timeout}s')
        socks = [c.sock for c in clients if not c.eof]
        if socks:
            select.select(socks, [], [], min(left, 0.05))
        else:
            time.sleep(min(left, 0.05))


def _tcp_inodes():
    """(local port, remote port) -> socket inode, of 127.0.0.1 sockets."""
    out = {}
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            out[(int(local.split(':')[1], 16),
                 int(remote.split(':')[1], 16))] = inode
    return out


def worker_of(ws, nginx, pids=None):
    """The pid of the nginx worker that holds ws's connection (or None)."""
    client_port = ws.sock.getsockname()[1]
    inode = _tcp_inodes().get((nginx.port, client_port))
    if inode is None:
        return None
    target = f'socket:[{inode}]'
    for pid in pids or nginx.worker_pids():
        try:
            fds = os.listdir(f'/proc/{pid}/fd')
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f'/proc/{pid}/fd/{fd}') == target:
                    return pid
            except OSError:
                continue
    return None
