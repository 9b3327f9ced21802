"""The Debian package (`make deb`, debian/): it builds, lintian finds no
error or warning in it, it holds the module, its snippet, sql/, the examples
and the web client with the dependencies Debian's nginx modules have, and
what it holds serves a chat.

The package is built once for this file, by `make deb` into this run's
folder (not .work/deb, which stays the user's).  It is not installed on the
system: `dpkg-deb -x` unpacks it into a scratch root, and Debian's
/usr/sbin/nginx runs the unpacked module from there, with the unpacked
conf.examples/dev.conf as its configuration, the unpacked web/ as its
client, and a private Postgres brought to the schema by the unpacked
sql/migrate.  Skipped only where dpkg-buildpackage is missing.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

import chatstack
from chatclient import Client
from conftest import BAD_LOG, Stack, T, WORK, _remove_old_runs

REPO = T.parent
PACKAGE = 'libnginx-mod-http-chat'
SHARE = 'usr/share/ngx-chat'
MODULE = 'usr/lib/nginx/modules/ngx_chat_module.so'
SNIPPET = 'usr/share/nginx/modules-available/mod-http-chat.conf'
ABI_FILE = pathlib.Path('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')

pytestmark = pytest.mark.skipif(
    shutil.which('dpkg-buildpackage') is None,
    reason='dpkg-buildpackage is missing (Debian package dpkg-dev, which '
           'scripts/deps installs): the Debian package cannot be built')


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, **kw)


def version():
    """The module's version, as src/ngx_chat.h says it."""
    text = (REPO / 'src/ngx_chat.h').read_text()
    return re.search(r'#define NGX_CHAT_VERSION\s+"([^"]+)"', text).group(1)


@pytest.fixture(scope='module')
def built():
    """`make deb` into this run's folder: {'deb', 'changes', 'root'}."""
    out = WORK / 'deb'
    r = run('make', '-s', '-C', REPO, 'deb',
            f'DEB={os.path.relpath(out, REPO)}')
    assert r.returncode == 0, f'make deb failed:\n{r.stdout}\n{r.stderr}'
    debs = sorted(out.glob(f'{PACKAGE}_*.deb'))
    changes = sorted(out.glob('*.changes'))
    assert len(debs) == 1 and len(changes) == 1, sorted(out.iterdir())
    root = out / 'root'
    r = run('dpkg-deb', '-x', debs[0], root)
    assert r.returncode == 0, r.stderr
    yield dict(deb=debs[0], changes=changes[0], root=root)
    # as the stack fixture does: the folders of runs that are gone
    _remove_old_runs()


def test_lintian_finds_no_error_or_warning(built):
    assert shutil.which('lintian'), 'lintian is missing (scripts/deps)'
    # the .changes names both .debs (the module's and its -dbgsym) and the
    # .buildinfo; overrides are in debian/*.lintian-overrides, with why
    r = run('lintian', '--pedantic', '--fail-on', 'error,warning',
            built['changes'])
    tags = [line for line in r.stdout.splitlines()
            if re.match(r'[EWIPX]: ', line)]
    assert r.returncode == 0 and not [t for t in tags if t[0] in 'EW'], \
        f'lintian:\n{r.stdout}{r.stderr}'


def test_the_package_holds_module_snippet_sql_examples_and_web(built):
    r = run('dpkg-deb', '-c', built['deb'])
    assert r.returncode == 0, r.stderr
    listed = {}
    for line in r.stdout.splitlines():
        mode, _owner, _size, _date, _time, path = line.split(None, 5)
        listed[path.split(' -> ')[0].lstrip('./').rstrip('/')] = mode
    assert listed[MODULE].startswith('-rw-r--r--')
    assert listed[SNIPPET].startswith('-rw-r--r--')
    assert listed[f'{SHARE}/sql/migrate'].startswith('-rwxr-xr-x')
    # every file of the checkout's sql/, conf.examples/ and web/, no other
    for d in ('sql', 'conf.examples', 'web'):
        mine = {str(p.relative_to(REPO)) for p in (REPO / d).rglob('*')
                if p.is_file()}
        theirs = {p[len(SHARE) + 1:] for p, m in listed.items()
                  if p.startswith(f'{SHARE}/{d}/') and m.startswith('-')}
        assert theirs == mine, d
    assert f'usr/share/doc/{PACKAGE}/copyright' in listed
    assert f'usr/share/doc/{PACKAGE}/README.Debian' in listed
    # nothing under /etc: the link to the snippet is the postinst's
    assert not [p for p in listed if p.startswith('etc')]

    snippet = (built['root'] / SNIPPET).read_text()
    assert snippet == 'load_module modules/ngx_chat_module.so;\n'


def test_control_names_the_nginx_abi_and_the_libraries(built):
    fields = {}
    r = run('dpkg-deb', '-f', built['deb'])
    assert r.returncode == 0, r.stderr
    for m in re.finditer(r'^(\S+): (.*(?:\n .*)*)', r.stdout, re.M):
        fields[m.group(1)] = m.group(2)
    assert fields['Package'] == PACKAGE
    assert fields['Version'] == version()
    assert fields['Section'] == 'httpd'
    depends = [d.strip().split()[0] for d in fields['Depends'].split(',')]
    # the ABI of the nginx this was built against, as nginx-dev states it
    abi = re.search(r'^nginx:abi=(\S+)', ABI_FILE.read_text(), re.M).group(1)
    assert abi in depends
    # ${shlibs:Depends}: the libraries the module links
    for lib in ('libpq5', 'libhiredis', 'libjwt', 'libjansson4', 'libgd3',
                'libssl3'):
        assert any(d.startswith(lib) for d in depends), (lib, depends)

    # the maintainer scripts of dh_nginx: the snippet linked as
    # /etc/nginx/modules-enabled/50-mod-http-chat.conf on install, moved
    # aside on remove, deleted on purge
    scripts = {}
    for name in ('postinst', 'prerm', 'postrm'):
        r = run('dpkg-deb', '-I', built['deb'], name)
        assert r.returncode == 0, (name, r.stderr)
        scripts[name] = r.stdout
    for text in scripts.values():
        assert 'mod-http-chat.conf:50-mod-http-chat.conf' in text
    assert 'ln -sf /usr/share/nginx/modules-available/$from' in \
        scripts['postinst']
    assert 'dpkg-trigger --no-await nginx-reload' in scripts['postinst']


def test_the_snippet_loads_the_module_in_debian_nginx(built):
    """The snippet's relative path resolves in nginx's prefix, whose
    modules/ is Debian's /usr/lib/nginx/modules: here the unpacked one."""
    tmp_path = WORK / 'deb-snippet'
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(parents=True)
    (tmp_path / 'modules').symlink_to(built['root'] / MODULE.rsplit('/', 1)[0])
    conf = tmp_path / 'nginx.conf'
    conf.write_text(f'include {built["root"] / SNIPPET};\n'
                    f'pid {tmp_path}/nginx.pid;\n'
                    'events {}\nhttp {}\n')
    r = run('/usr/sbin/nginx', '-t', '-p', f'{tmp_path}/', '-c', conf)
    assert r.returncode == 0, r.stderr
    assert 'test is successful' in r.stderr


def test_what_it_holds_serves_a_chat(built):
    root = built['root']
    share = root / SHARE
    stack = Stack(WORK / 'deb-stack')
    ng = None
    try:
        stack.pg.start()
        # the packaged script and schema, not the checkout's
        r = run(share / 'sql/migrate', stack.pg.conninfo)
        assert r.returncode == 0, r.stderr
        assert 'functions, as in sql/functions/' in r.stdout, r.stdout
        assert stack.pg.sql('SELECT count(*) FROM public.chat_migrations') \
            == str(len(list((share / 'sql/migrations').glob('*.sql'))))
        stack.redis.start()

        ng = chatstack.Nginx(
            stack.root, asan=False, template=share / 'conf.examples/dev.conf',
            MODULE=root / MODULE, WEB=share / 'web',
            PG_CONNINFO=stack.pg.conninfo, REDIS=stack.redis.address,
            JWT_KEY=f'secret_file={stack.secret_file} alg=HS256')
        ng.start()
        ng.wait_ready()

        health = Client(ng.url).get('health')
        assert health.status == 200, health
        assert health.json['status'] == 'ok', health

        # the web client, from the unpacked web/
        page = Client(ng.url, prefix='/').get('')
        assert page.status == 200, page
        assert page.body == (share / 'web/index.html').read_text()

        alice = Client(ng.url, stack.tokens.make('alice', tenant='deb'))
        bob = Client(ng.url, stack.tokens.make('bob', tenant='deb'))
        cid = alice.create('group', ['bob'])['id']
        sent = alice.post(f'conversations/{cid}/messages',
                          {'content': 'hello from the .deb'})
        assert sent.status == 201, sent
        got = bob.get(f'conversations/{cid}/messages')
        assert got.status == 200, got
        assert [(m['sender_id'], m['content']) for m in got.json['items']] \
            == [('alice', 'hello from the .deb')]

        # it is the unpacked module that nginx mapped
        maps = pathlib.Path(f'/proc/{ng.worker_pids()[0]}/maps').read_text()
        assert str((root / MODULE).resolve()) in maps
    finally:
        if ng is not None:
            ng.stop()
        stack.redis.stop()
        stack.pg.stop()
    bad = [line for line in (ng.log_text() if ng else '').splitlines()
           if BAD_LOG.search(line)]
    assert not bad, '\n'.join(bad)
