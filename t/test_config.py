"""`nginx -t` refuses a wrong chat_* configuration and names the directive.

Each case renders the dev template (or t/conf/custom.conf, whose
${POSTGRES} is the whole chat_postgres directive) with one fault, and
checks that the test fails with a message naming the directive at fault
and the fault itself.
"""

import pathlib
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CUSTOM_TEMPLATE = pathlib.Path(__file__).resolve().parent / 'conf/custom.conf'

PG = 'host=127.0.0.1 port=5432 dbname=chat user=chat'


def refused(out, *words):
    """nginx -t failed, and its message holds each of words."""
    text = out.stderr + out.stdout
    assert out.returncode != 0, text
    assert '[emerg]' in text, text
    for w in words:
        assert w in text, (w, text)
    assert 'test is successful' not in text, text
    return text


def test_good_config_passes(check_config):
    out = check_config()
    assert out.returncode == 0, out.stderr
    assert 'syntax is ok' in out.stderr
    assert 'test is successful' in out.stderr


def test_good_config_with_all_pool_parameters_passes(check_config):
    out = check_config(template=CUSTOM_TEMPLATE,
                       POSTGRES=f'chat_postgres "{PG}" pool=1 queue=0 '
                                f'timeout=3s;')
    assert out.returncode == 0, out.stderr


# chat_postgres

def test_postgres_host_name_is_refused(check_config):
    out = check_config(PG_CONNINFO='host=localhost port=5432 dbname=chat')
    refused(out, 'chat_postgres', '"localhost"', 'is a name')


def test_postgres_host_name_among_addresses_is_refused(check_config):
    out = check_config(PG_CONNINFO='host=127.0.0.1,db.example.com port=5432')
    refused(out, 'chat_postgres', 'db.example.com')


def test_postgres_invalid_conninfo_is_refused(check_config):
    out = check_config(PG_CONNINFO='host=127.0.0.1 bogus_option=1')
    refused(out, 'chat_postgres', 'invalid connection string', 'bogus_option')


def test_postgres_malformed_conninfo_is_refused(check_config):
    out = check_config(PG_CONNINFO="host=127.0.0.1 port='5432")
    refused(out, 'chat_postgres', 'invalid connection string')


@pytest.mark.parametrize('param', ['pool=0', 'pool=257', 'pool=x', 'pool='])
def test_postgres_bad_pool_size_is_refused(check_config, param):
    out = check_config(template=CUSTOM_TEMPLATE,
                       POSTGRES=f'chat_postgres "{PG}" {param};')
    refused(out, 'chat_postgres', 'pool=')


@pytest.mark.parametrize('param', ['queue=-1', 'queue=many', 'timeout=0',
                                   'timeout=soon'])
def test_postgres_bad_queue_or_timeout_is_refused(check_config, param):
    out = check_config(template=CUSTOM_TEMPLATE,
                       POSTGRES=f'chat_postgres "{PG}" {param};')
    refused(out, 'chat_postgres', param.split('=')[0] + '=')


def test_postgres_unknown_parameter_is_refused(check_config):
    out = check_config(template=CUSTOM_TEMPLATE,
                       POSTGRES=f'chat_postgres "{PG}" pool=2 size=3;')
    refused(out, 'chat_postgres', 'unknown parameter', 'size=3')


def test_postgres_twice_is_refused(check_config):
    out = check_config(template=CUSTOM_TEMPLATE,
                       POSTGRES=f'chat_postgres "{PG}"; '
                                f'chat_postgres "{PG}";')
    refused(out, 'chat_postgres', 'duplicate')


def test_api_without_postgres_is_refused(check_config):
    out = check_config(template=CUSTOM_TEMPLATE, POSTGRES='')
    refused(out, 'chat_api', 'chat_postgres')


# chat_jwt_key

SECRET = 'k' * 40


def test_jwt_key_without_alg_is_refused(check_config):
    out = check_config(JWT_KEY=f'secret={SECRET} secret={SECRET}')
    refused(out, 'chat_jwt_key', 'alg=')


def test_jwt_key_with_one_parameter_is_refused(check_config):
    # the directive takes exactly two parameters
    out = check_config(JWT_KEY=f'secret={SECRET}')
    refused(out, 'chat_jwt_key')


@pytest.mark.parametrize('alg', ['HS257', 'PS256', 'rs256x', ''])
def test_jwt_key_unknown_alg_is_refused(check_config, alg):
    out = check_config(JWT_KEY=f'secret={SECRET} alg={alg}')
    refused(out, 'chat_jwt_key', 'unknown "alg="')


@pytest.mark.parametrize('alg', ['none', 'NONE'])
def test_jwt_key_alg_none_is_refused(check_config, alg):
    out = check_config(JWT_KEY=f'secret={SECRET} alg={alg}')
    refused(out, 'chat_jwt_key', 'alg=')


def test_jwt_key_short_hmac_secret_is_refused(check_config):
    out = check_config(JWT_KEY=f'secret={"k" * 31} alg=HS256')
    refused(out, 'chat_jwt_key', 'at least 32 bytes')


def test_jwt_key_hmac_secret_of_32_bytes_passes(check_config):
    out = check_config(JWT_KEY=f'secret={"k" * 32} alg=HS256')
    assert out.returncode == 0, out.stderr


def test_jwt_key_short_secret_file_is_refused(check_config, tmp_path):
    # the trailing newline of a secret file is not part of the secret
    f = tmp_path / 'short.secret'
    f.write_text('k' * 31 + '\n')
    out = check_config(JWT_KEY=f'secret_file={f} alg=HS256')
    refused(out, 'chat_jwt_key', 'at least 32 bytes')


def test_jwt_key_missing_file_is_refused(check_config, tmp_path):
    missing = tmp_path / 'no-such-key.pem'
    out = check_config(JWT_KEY=f'file={missing} alg=RS256')
    refused(out, 'chat_jwt_key', 'cannot open', str(missing))


def test_jwt_key_empty_file_is_refused(check_config, tmp_path):
    f = tmp_path / 'empty.pem'
    f.write_text('')
    out = check_config(JWT_KEY=f'file={f} alg=RS256')
    refused(out, 'chat_jwt_key', 'empty')


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize('kind', ['private', 'pkcs1_public', 'text'])
def test_jwt_key_rs256_file_not_a_public_key_pem_is_refused(
        check_config, tmp_path, kind):
    key = _rsa()
    if kind == 'private':
        data = key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    elif kind == 'pkcs1_public':
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    else:
        data = b'this is not a key at all, but it is long enough\n'
    f = tmp_path / f'{kind}.pem'
    f.write_bytes(data)
    out = check_config(JWT_KEY=f'file={f} alg=RS256')
    refused(out, 'chat_jwt_key', 'PUBLIC KEY')


def test_jwt_key_rs256_public_key_pem_passes(check_config, tmp_path):
    f = tmp_path / 'public.pem'
    f.write_bytes(_rsa().public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    out = check_config(JWT_KEY=f'file={f} alg=RS256')
    assert out.returncode == 0, out.stderr


def _public_pem(tmp_path, key):
    f = tmp_path / 'public.pem'
    f.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    return f


@pytest.mark.parametrize('alg,key,wants', [
    ('RS256', lambda: ec.generate_private_key(ec.SECP256R1()), 'an RSA key'),
    ('ES256', _rsa, 'an EC key on P-256'),
    ('ES256', lambda: ec.generate_private_key(ec.SECP384R1()),
     'an EC key on P-256'),
    ('ES512', lambda: ec.generate_private_key(ec.SECP256R1()),
     'an EC key on P-521'),
], ids=['rs256-ec', 'es256-rsa', 'es256-p384', 'es512-p256'])
def test_jwt_key_of_another_type_than_alg_is_refused(check_config, tmp_path,
                                                     alg, key, wants):
    f = _public_pem(tmp_path, key())
    out = check_config(JWT_KEY=f'file={f} alg={alg}')
    refused(out, 'chat_jwt_key', f'alg={alg} needs {wants}')


@pytest.mark.parametrize('alg,curve', [('ES256', ec.SECP256R1),
                                       ('ES384', ec.SECP384R1),
                                       ('ES512', ec.SECP521R1)])
def test_jwt_key_ec_public_key_of_its_curve_passes(check_config, tmp_path,
                                                    alg, curve):
    f = _public_pem(tmp_path, ec.generate_private_key(curve()))
    out = check_config(JWT_KEY=f'file={f} alg={alg}')
    assert out.returncode == 0, out.stderr


def test_jwt_key_unreadable_public_key_is_refused(check_config, tmp_path):
    f = tmp_path / 'broken.pem'
    f.write_text('-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n'
                 '-----END PUBLIC KEY-----\n')
    out = check_config(JWT_KEY=f'file={f} alg=RS256')
    refused(out, 'chat_jwt_key', 'does not hold a public key')


def test_jwt_key_unknown_parameter_is_refused(check_config):
    out = check_config(JWT_KEY=f'key={SECRET} alg=HS256')
    refused(out, 'chat_jwt_key', 'unknown parameter', 'key=')


def test_api_without_jwt_key_is_refused(check_config, tmp_path):
    template = tmp_path / 'nojwt.conf'
    template.write_text(CUSTOM_TEMPLATE.read_text()
                        .replace('chat_jwt_key ${JWT_KEY};', ''))
    out = check_config(template=template,
                       POSTGRES=f'chat_postgres "{PG}";')
    refused(out, 'chat_api', 'chat_jwt_key')


# limits

def test_body_max_below_message_max_is_refused(check_config):
    out = check_config(EXTRA='chat_message_max 16k; chat_body_max 8k;')
    refused(out, 'chat_body_max', 'chat_message_max')


def test_body_max_equal_to_message_max_passes(check_config):
    out = check_config(EXTRA='chat_message_max 16k; chat_body_max 16k;')
    assert out.returncode == 0, out.stderr


def test_bad_leeway_is_refused(check_config):
    out = check_config(EXTRA='chat_jwt_leeway soon;')
    refused(out, 'chat_jwt_leeway')


# chat_redis

def test_redis_prefix_of_64_bytes_passes(check_config):
    out = check_config(REDIS='127.0.0.1:6379 prefix=' + 'p' * 64)
    assert out.returncode == 0, out.stderr


def test_redis_prefix_longer_than_64_bytes_is_refused(check_config):
    out = check_config(REDIS='127.0.0.1:6379 prefix=' + 'p' * 65)
    refused(out, 'chat_redis', 'prefix is longer than 64 bytes')


def test_redis_unknown_parameter_is_refused(check_config):
    out = check_config(REDIS='127.0.0.1:6379 db=2')
    refused(out, 'chat_redis', 'unknown parameter', '"db=2"')


def test_chat_api_outside_location_is_refused(check_config):
    out = check_config(EXTRA='chat_api;')
    refused(out, 'chat_api', 'not allowed here')


def test_nginx_binary_is_the_stock_one():
    # the module is built for the installed nginx 1.22
    out = subprocess.run(['nginx', '-v'], capture_output=True, text=True)
    assert 'nginx/1.22' in out.stderr


def test_postgres_host_name_of_256_bytes_or_more_is_refused(check_config):
    # too long for an address, and so a name libpq would resolve
    for n in (256, 300):
        name = 'a' * (n - len('.example.com')) + '.example.com'
        out = check_config(PG_CONNINFO=f'host=127.0.0.1,{name} port=5432')
        refused(out, 'chat_postgres', f'({n} bytes) is a name', 'aaaa...')


def test_postgres_socket_directory_of_256_bytes_passes(check_config):
    out = check_config(PG_CONNINFO='host=/' + 'd' * 255 + ' port=5432')
    assert out.returncode == 0, out.stderr
