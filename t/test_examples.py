"""The configurations of conf.examples/ are valid for the module as built.

Each is tested as written but for what only a real host has: the module's
path, key and certificate files, and the addresses it listens on.
"""

import pathlib
import re
import subprocess

import pytest

import chatstack

EXAMPLES = sorted(p for p in (chatstack.REPO / 'conf.examples').glob('*.conf')
                  if p.name != 'dev.conf')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('examples')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-out', d / 'key.pem'],
                   check=True, capture_output=True)
    subprocess.run(['openssl', 'pkey', '-in', d / 'key.pem', '-pubout',
                    '-out', d / 'ec-pub.pem'], check=True, capture_output=True)
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-out',
                    d / 'rsa.pem'], check=True, capture_output=True)
    subprocess.run(['openssl', 'pkey', '-in', d / 'rsa.pem', '-pubout',
                    '-out', d / 'rsa-pub.pem'], check=True, capture_output=True)
    (d / 'secret').write_text('x' * 40)
    # nginx makes the store and the temporary path, not their parent
    (d / 'var-lib-chat').mkdir()
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-subj', '/CN=chat.example.com', '-days', '1',
                    '-keyout', d / 'tls.key', '-out', d / 'tls.pem'],
                   check=True, capture_output=True)
    return d


def localize(text, d):
    """The example, with this machine's files and loopback addresses."""
    text = text.replace('modules/ngx_chat_module.so', str(chatstack.MODULE))
    # the public key of the kind the example's alg= names
    pub = 'ec-pub.pem' if 'alg=ES' in text else 'rsa-pub.pem'
    text = text.replace('/etc/nginx/chat-jwt.pub.pem', str(d / pub))
    text = text.replace('/etc/nginx/chat-jwt.secret', str(d / 'secret'))
    text = re.sub(r'/etc/ssl/certs/\S+\.pem', str(d / 'tls.pem'), text)
    text = re.sub(r'/etc/ssl/private/\S+\.key', str(d / 'tls.key'), text)
    text = text.replace('/var/lib/chat/', f'{d}/var-lib-chat/')
    return re.sub(r'listen\s+[^\s;]+',
                  lambda m: f'listen 127.0.0.1:{chatstack.free_port()}', text)


@pytest.mark.parametrize('example', EXAMPLES, ids=lambda p: p.name)
def test_example_configuration_passes_nginx_t(example, files, tmp_path):
    conf = tmp_path / 'nginx.conf'
    conf.write_text(localize(example.read_text(), files))
    out = subprocess.run(['nginx', '-p', str(tmp_path), '-c', str(conf), '-t',
                          '-g', f'pid {tmp_path}/nginx.pid; '
                                'error_log stderr;'],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'test is successful' in out.stderr


def test_every_example_is_tested():
    names = {p.name for p in EXAMPLES}
    assert {'nginx.conf', 'two-hosts.conf', 'tls.conf'} <= names
