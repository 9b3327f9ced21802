#!/usr/bin/python3
"""Servers for the browser tests: Postgres, Redis and nginx (the release
module, two workers) serving web/ at / and the API, as `make run` does.

Prints one JSON line
  {"url", "tokens": {user: jwt}, "tenant", "nginx_pid", "prefix", "error_log"}
then waits until its standard input closes, and stops everything.

  /usr/bin/python3 t/web/stack.py [USER...]   (default: alice bob carol)

CHAT_SNAPSHOT=DIR takes the module (DIR/build/release) and the migrations
(DIR/sql) from another checkout, e.g. a clean one while src/ is mid-edit.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

T = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(T))
sys.path.insert(0, str(T.parent / 'scripts'))

import chatstack  # noqa: E402
from chatclient import Tokens  # noqa: E402

WORK = T.parent / '.work' / 'web-test'


def main(users):
    root = WORK / f'run-{os.getpid()}'
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # runs whose process is gone
    for d in WORK.glob('run-*'):
        pid = d.name[4:]
        if d != root and pid.isdigit() and not chatstack.pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)

    secret = chatstack.new_secret()
    secret_file = root / 'jwt.secret'
    secret_file.write_text(secret + '\n')
    pg = chatstack.Postgres(root, durable=False)
    redis = chatstack.Redis(root)
    nginx = None
    try:
        pg.start()
        snapshot = os.environ.get('CHAT_SNAPSHOT')
        if snapshot:
            subprocess.run([os.path.join(snapshot, 'sql/migrate'), pg.conninfo],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            pg.migrate()
        redis.start()
        extra = {}
        if snapshot:
            extra['MODULE'] = os.path.join(snapshot, 'build/release/ngx_chat_module.so')
        nginx = chatstack.Nginx(root, workers=2, PG_CONNINFO=pg.conninfo, **extra,
                                REDIS=redis.address,
                                JWT_KEY=f'secret_file={secret_file} alg=HS256')
        nginx.start()
        nginx.wait_ready()
        tokens = Tokens(secret)
        tenant = 'web-' + uuid.uuid4().hex[:8]
        print(json.dumps({
            'url': nginx.url,
            'tenant': tenant,
            'tokens': {u: tokens.make(u, tenant=tenant, ttl=6 * 3600,
                                      name=u.title()) for u in users},
            'nginx_pid': nginx.pid,
            'prefix': str(nginx.prefix),
            'error_log': str(nginx.error_log),
        }), flush=True)
        # until the test closes our stdin (or dies)
        while sys.stdin.read(4096):
            pass
    finally:
        if nginx is not None:
            nginx.stop()
        redis.stop()
        pg.stop()


if __name__ == '__main__':
    main(sys.argv[1:] or ['alice', 'bob', 'carol'])
