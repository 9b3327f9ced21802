#!/usr/bin/python3
"""A webhook receiver that turns ngx_chat's notifications into mail.

ngx_chat POSTs a notification of a user who is away to the site's
webhook (chat_webhook; docs/notifications.md).  This receiver checks the
Standard Webhooks signature and the timestamp, forgets nothing it has
sent (by webhook-id, for a day), and sends one mail a notification
through an SMTP server.  It answers 200 once the SMTP server took the
mail, 503 while it cannot be reached (ngx_chat tries again, with the same
webhook-id), 401 for a bad signature, 400 for what is not a notification.

    receiver.py --listen 127.0.0.1:9000 --secret whsec_... \\
                --smtp 127.0.0.1:25 --from chat@example.com \\
                --to '{user_id}@example.com' [--url https://chat.example.com]

--to is a template of the recipient's address ({tenant_id}, {user_id});
a site with addresses of its own puts them in a JSON file of
{"<tenant>/<user>": "address"} given as --addresses FILE.  Python's
standard library only.
"""

import argparse
import base64
import email.message
import hashlib
import hmac
import http.server
import json
import smtplib
import sys
import threading
import time

TOLERANCE = 300           # seconds a timestamp may be off
SEEN_FOR = 86400          # how long a webhook-id is remembered


def key_of(secret):
    if secret.startswith('whsec_'):
        return base64.b64decode(secret[6:])
    return secret.encode()


class Mailer:
    def __init__(self, args):
        self.key = key_of(args.secret)
        self.smtp = args.smtp.rsplit(':', 1)
        self.sender = args.sender
        self.to = args.to
        self.url = args.url
        self.addresses = {}
        if args.addresses:
            with open(args.addresses) as f:
                self.addresses = json.load(f)
        self.seen = {}
        self.lock = threading.Lock()

    def signed(self, headers, body):
        wid = headers.get('webhook-id', '')
        ts = headers.get('webhook-timestamp', '')
        if not wid or not ts.isdigit() or \
                abs(time.time() - int(ts)) > TOLERANCE:
            return None
        want = base64.b64encode(hmac.new(
            self.key, f'{wid}.{ts}.'.encode() + body,
            hashlib.sha256).digest()).decode()
        given = [s.split(',', 1)[1] for s in
                 headers.get('webhook-signature', '').split()
                 if s.startswith('v1,')]
        if not any(hmac.compare_digest(want, g) for g in given):
            return None
        return wid

    def address(self, note):
        mine = self.addresses.get(f'{note["tenant_id"]}/{note["user_id"]}')
        return mine or self.to.format(tenant_id=note['tenant_id'],
                                      user_id=note['user_id'])

    def mail(self, wid, note):
        items = note['items']
        first = items[-1]
        where = first.get('title') or 'a direct conversation'
        if note['count'] == 1:
            subject = f'New message from {first["sender_id"]} in {where}'
        else:
            subject = f'{note["count"]} new messages in {where}'
        lines = [f'{i["sender_id"]}: {i.get("preview") or "(a file)"}'
                 for i in items]
        if self.url:
            lines.append('')
            lines.append(f'{self.url}/#conversation='
                         f'{first["conversation_id"]}')
        m = email.message.EmailMessage()
        m['From'] = self.sender
        m['To'] = self.address(note)
        m['Subject'] = subject
        m['Message-ID'] = f'<{wid}@ngx-chat>'
        m.set_content('\n'.join(lines) + '\n')
        host, port = self.smtp
        with smtplib.SMTP(host, int(port), timeout=10) as s:
            s.send_message(m)

    def take(self, headers, body):
        """(status, text) of the answer to one POST."""
        wid = self.signed(headers, body)
        if wid is None:
            return 401, 'bad signature or timestamp'
        try:
            note = json.loads(body)
            assert note['type'] == 'notification' and note['items']
        except (ValueError, KeyError, AssertionError, TypeError):
            return 400, 'not a notification'
        now = time.time()
        with self.lock:
            self.seen = {k: t for k, t in self.seen.items()
                         if now - t < SEEN_FOR}
            if wid in self.seen:
                return 200, 'sent before'
        try:
            self.mail(wid, note)
        except (OSError, smtplib.SMTPException) as e:
            return 503, f'the mail server: {e}'
        with self.lock:
            self.seen[wid] = now
        return 200, 'sent'


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--listen', default='127.0.0.1:9000')
    p.add_argument('--secret', required=True)
    p.add_argument('--smtp', default='127.0.0.1:25')
    p.add_argument('--from', dest='sender', required=True)
    p.add_argument('--to', default='{user_id}@localhost')
    p.add_argument('--addresses')
    p.add_argument('--url')
    args = p.parse_args(argv[1:])
    mailer = Mailer(args)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get('Content-Length') or 0)
            status, text = mailer.take(self.headers, self.rfile.read(n))
            body = (text + '\n').encode()
            self.send_response(status)
            if status == 503:
                self.send_header('Retry-After', '5')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write('webhook-mail: ' + fmt % a + '\n')

    host, port = args.listen.rsplit(':', 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    print(f'webhook-mail: listening on {args.listen}', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main(sys.argv)
