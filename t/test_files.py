"""Files (docs/api.md, "Files"): uploads streamed to disk and stored under
their hash, downloads checked in Postgres and sent by nginx itself,
thumbnails made in a thread pool, attachment messages, the media of a
conversation, and every bad input and fault the issue names.

Each test works in a fresh tenant of the shared stack (two workers, the
dev configuration with chat_files); the tests that change the files'
directives or break the store have an nginx of their own.
"""

import hashlib
import io
import json
import os
import pathlib
import re
import socket
import subprocess
import time
import urllib.parse

import pytest

from chatclient import expect_error
from wsclient import ChatWS

PIL = pytest.importorskip('PIL.Image')
from PIL import Image  # noqa: E402

MiB = 1024 * 1024
REPO = pathlib.Path(__file__).resolve().parent.parent


# helpers

def upload(client, data, content_type='application/octet-stream', name=None,
           **kw):
    # %XX in a name stays as written: the tests give bytes that way
    path = 'files' + (f'?name={urllib.parse.quote(name, safe="%")}'
                      if name is not None else '')
    return client.post(path, raw=data, headers={'Content-Type': content_type},
                       **kw)


def uploaded(client, data, **kw):
    r = upload(client, data, **kw)
    assert r.status == 201, r
    return r.json


def multipart(parts, boundary='XyZzY-b0undary'):
    """parts: (name, value bytes, filename or None, content type or None);
    returns (body, content type)."""
    out = []
    for name, value, filename, ctype in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"'
        head += '\r\n'
        if ctype:
            head += f'Content-Type: {ctype}\r\n'
        out.append(head.encode() + b'\r\n' + value + b'\r\n')
    out.append(f'--{boundary}--\r\n'.encode())
    return b''.join(out), f'multipart/form-data; boundary={boundary}'


def post_form(client, path, parts, **kw):
    body, ctype = multipart(parts)
    return client.post(path, raw=body, headers={'Content-Type': ctype}, **kw)


def download(client, file, **kw):
    url = file['url'] if isinstance(file, dict) else file
    return client.get(url[len(client.prefix):], **kw)


def png(w=40, h=30, color=(200, 10, 10)):
    buf = io.BytesIO()
    Image.new('RGB', (w, h), color).save(buf, 'PNG')
    return buf.getvalue()


def share(client, cid, file_ids, type='file', content=None):
    r = client.post(f'conversations/{cid}/messages',
                    dict(type=type, content=content, attachments=file_ids))
    assert r.status == 201, r
    return r.json


def store_files(nginx):
    root = nginx.prefix / 'files'
    return sorted(p for p in root.rglob('*') if p.is_file()
                  and '.tmp' not in p.parts)


def temp_files(nginx):
    return sorted((nginx.prefix / 'client_body_temp').rglob('*'))


def rows(stack, tenant):
    return stack.query('SELECT count(*) FROM chat.files WHERE tenant_id = %s',
                       (tenant.name,))[0][0]


# uploads and downloads, byte for byte

@pytest.mark.parametrize('size', [0, 1, 4096, 300 * 1024])
def test_raw_upload_round_trips_byte_for_byte(tenant, size):
    alice = tenant.client('alice')
    data = os.urandom(size)
    f = uploaded(alice, data, name='blob.bin')
    assert f['size'] == size and f['name'] == 'blob.bin'
    assert f['content_type'] == 'application/octet-stream'
    assert f['kind'] == 'file' and f['thumbnail_url'] is None
    assert f['url'] == f'/api/chat/files/{f["id"]}'
    r = download(alice, f)
    assert r.status == 200 and r.data == data
    assert int(r.headers['Content-Length']) == size


def test_twenty_mebibytes_raw_and_chunked(tenant, stack):
    alice = tenant.client('alice')
    data = os.urandom(20 * MiB)
    plain = uploaded(alice, data, timeout=120)
    chunked = uploaded(alice, data, chunked=True, timeout=120)
    for f in (plain, chunked):
        assert f['size'] == len(data)
        r = download(alice, f, timeout=120)
        assert r.status == 200 and r.data == data
    # the same bytes are stored once
    key = hashlib.sha256(data).hexdigest()
    assert [p.name for p in store_files(stack.main)].count(key) == 1


def test_multipart_upload_keeps_bytes_that_look_like_a_boundary(tenant):
    alice = tenant.client('alice')
    # (the byte after the boundary's prefix is fixed: a random 'y' there
    # would complete the boundary, which then rightly ends the part)
    tricky = (b'\r\n--XyZzY-b0und\r\n--\r\n\r\r\n--XyZzY-b0undar'
              + b'Q' + os.urandom(70000) + b'\r\n-')
    r = post_form(alice, 'files', [('file', tricky, 'odd.dat', 'x/y')])
    assert r.status == 201, r
    assert r.json['name'] == 'odd.dat' and r.json['size'] == len(tricky)
    assert download(alice, r.json).data == tricky


def test_head_answers_the_headers_without_the_bytes(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, b'x' * 1000)
    r = alice.request('HEAD', f'files/{f["id"]}')
    assert r.status == 200 and r.data == b''
    assert r.headers['Content-Length'] == '1000'


def test_download_headers_ranges_and_conditional_requests(tenant):
    alice = tenant.client('alice')
    data = bytes(range(256)) * 40
    f = uploaded(alice, data, content_type='application/pdf',
                 name='report "q3" \u00e9.pdf')
    r = download(alice, f)
    h = r.headers
    sha = hashlib.sha256(data).hexdigest()
    assert h['ETag'] == f'"{sha}"'
    assert 'Last-Modified' in h
    assert h['Cache-Control'].startswith('private')
    assert h['X-Content-Type-Options'] == 'nosniff'
    assert h['Content-Security-Policy'] == 'sandbox'
    # not from the bytes: the claim stands, as an attachment
    assert h['Content-Type'] == 'application/pdf'
    assert h['Content-Disposition'] == (
        'attachment; filename="report _q3_ __.pdf"; '
        "filename*=UTF-8''report%20%22q3%22%20%C3%A9.pdf")

    r = download(alice, f, headers={'If-None-Match': f'"{sha}"'})
    assert r.status == 304 and r.data == b''

    r = download(alice, f, headers={'Range': 'bytes=10-19'})
    assert r.status == 206 and r.data == data[10:20]
    assert r.headers['Content-Range'] == f'bytes 10-19/{len(data)}'

    r = download(alice, f, headers={'Range': 'bytes=0-1,100-101'})
    assert r.status == 206
    assert r.headers['Content-Type'].startswith('multipart/byteranges')
    assert data[0:2] in r.data and data[100:102] in r.data

    r = download(alice, f, headers={'Range': f'bytes={len(data) + 5}-'})
    assert r.status == 416


def test_same_bytes_twice_are_two_files_and_one_stored_copy(tenant, stack):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    data = os.urandom(5000)
    a = uploaded(alice, data, name='a.bin')
    b = uploaded(bob, data, name='b.bin')
    assert a['id'] != b['id']
    key = hashlib.sha256(data).hexdigest()
    assert [p.name for p in store_files(stack.main)].count(key) == 1
    # neither sees the other's, though the bytes are one
    assert download(bob, a).status == 404
    assert download(bob, b).data == data


# what the bytes are

def test_type_comes_from_the_bytes_not_the_claim(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, png(64, 48), content_type='text/plain', name='x.txt')
    assert f['content_type'] == 'image/png' and f['kind'] == 'image'
    assert (f['width'], f['height']) == (64, 48)
    r = download(alice, f)
    assert r.headers['Content-Type'] == 'image/png'
    assert r.headers['Content-Disposition'].startswith('inline;')


@pytest.mark.parametrize('claim', [
    'text/html', 'image/svg+xml', 'application/xhtml+xml', 'text/javascript',
    'TEXT/HTML; charset=utf-8', 'application/xml', 'text/x-html',
    'bad type', 'text/plain\u0001'])
def test_active_or_malformed_claims_become_octet_stream(tenant, claim):
    alice = tenant.client('alice')
    body = b'<html><script>alert(1)</script></html>'
    f = uploaded(alice, body, content_type=claim.encode('latin-1').decode(),
                 name='page.html')
    assert f['content_type'] == 'application/octet-stream'
    assert f['kind'] == 'file'
    r = download(alice, f)
    assert r.headers['Content-Type'] == 'application/octet-stream'
    assert r.headers['Content-Disposition'].startswith('attachment;')


def test_claims_that_are_not_active_stand(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, b'a,b\n1,2\n', content_type='Text/CSV; charset=utf-8')
    assert f['content_type'] == 'text/csv' and f['kind'] == 'file'


def test_media_kinds_from_the_bytes(tenant):
    alice = tenant.client('alice')
    samples = {
        b'\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom': ('video/mp4',
                                                             'video'),
        b'ID3\x04\x00\x00\x00\x00\x00\x00' + b'\x00' * 64: ('audio/mpeg',
                                                          'audio'),
        b'OggS\x00\x02' + b'\x00' * 22 + b'OpusHead': ('audio/ogg', 'audio'),
        b'%PDF-1.7\n%\xe2\xe3\xcf\xd3\n': ('application/pdf', 'file'),
        b'GIF89a\x10\x00\x08\x00\x00\x00\x00;': ('image/gif', 'image'),
    }
    for data, (ctype, kind) in samples.items():
        f = uploaded(alice, data, content_type='application/octet-stream')
        assert (f['content_type'], f['kind']) == (ctype, kind), data[:12]


def test_allow_list_of_types(stack, tenant):
    ng = stack.nginx(name='files-types',
                     EXTRA='chat_files_types "image/*" application/pdf;')
    alice = tenant.client('alice', nginx=ng)
    assert upload(alice, png()).status == 201
    assert upload(alice, b'%PDF-1.4 x').status == 201
    expect_error(upload(alice, b'plain words', content_type='text/plain'),
                 415, 'text/plain')


# names

@pytest.mark.parametrize('given, stored', [
    ('../../etc/passwd', 'passwd'),
    ('..\\..\\boot.ini', 'boot.ini'),
    ('a%01b.txt', 'a_b.txt'),
    ('%E2%80%AEfdp.exe', 'fdp.exe'),            # RTL override gone
    ('.htaccess', 'htaccess'),
    ('%C2%85line.txt', '_line.txt'),            # U+0085 is a control
    ('', 'file'),
])
def test_names_are_stored_and_served_safely(tenant, given, stored):
    alice = tenant.client('alice')
    f = uploaded(alice, b'data', name=given)
    assert f['name'] == stored
    cd = download(alice, f).headers['Content-Disposition']
    assert '\r' not in cd and '\n' not in cd and '/' not in cd


def test_a_name_that_cannot_be_text_is_refused(tenant):
    alice = tenant.client('alice')
    expect_error(upload(alice, b'x', name='a%00b'), 400, 'NUL')
    expect_error(upload(alice, b'x', name='%FF%FEx.txt'), 400, 'UTF-8')


def test_multipart_names_that_are_not_utf8_are_cleaned(tenant):
    alice = tenant.client('alice')
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; '
            b'filename="a\xff\xfe.txt"\r\n\r\nx\r\n--B--\r\n')
    r = alice.post('files', raw=body,
                   headers={'Content-Type': 'multipart/form-data; boundary=B'})
    assert r.status == 201, r
    assert r.json['name'] == 'a__.txt'


def test_a_thousand_byte_name_keeps_its_extension(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, b'data', name='\u00e9' * 495 + '.tar.gz')
    assert len(f['name'].encode()) <= 255 and f['name'].endswith('.gz')
    f = uploaded(alice, b'data', name='n' * 1000)
    assert f['name'] == 'n' * 255


def test_multipart_filename_with_nul_or_newline_is_refused(tenant):
    alice = tenant.client('alice')
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; '
            b'filename="a\x00b"\r\n\r\nx\r\n--B--\r\n')
    r = alice.post('files', raw=body,
                   headers={'Content-Type': 'multipart/form-data; boundary=B'})
    expect_error(r, 400, 'control character')


# access follows membership

def test_access_follows_membership(tenant, new_tenant):
    alice, bob, carol = (tenant.client(u) for u in ('alice', 'bob', 'carol'))
    f = uploaded(alice, b'secret plans', name='plans.txt')
    # the uploader, nobody else, until it is shared
    assert download(alice, f).status == 200
    expect_error(download(bob, f), 404)
    expect_error(tenant.anonymous().get(f'files/{f["id"]}'), 401)
    expect_error(alice.get('files/99999999'), 404)
    expect_error(alice.get('files/x'), 400, 'file_id')

    cid = alice.create('group', ['bob', 'carol'])['id']
    m = share(alice, cid, [f['id']], content='see attached')
    assert [a['id'] for a in m['attachments']] == [f['id']]
    assert m['attachments'][0]['name'] == 'plans.txt'
    assert download(bob, f).data == b'secret plans'
    assert download(carol, f).status == 200

    # another tenant's user of the same name sees nothing
    expect_error(download(new_tenant().client('bob'), f), 404)

    # removed from the conversation, bob sees it no more; carol still does
    r = alice.delete(f'conversations/{cid}/members/bob')
    assert r.status in (200, 204), r
    expect_error(download(bob, f), 404)
    assert download(carol, f).status == 200

    # a deleted message takes its attachments out of sight
    r = alice.delete(f'conversations/{cid}/messages/{m["id"]}')
    assert r.status in (200, 204), r
    expect_error(download(carol, f), 404)
    assert download(alice, f).status == 200


def test_a_file_shared_twice_stays_when_one_message_goes(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    f = uploaded(alice, png(), name='p.png')
    cid = alice.create('group', ['bob'])['id']
    m1 = share(alice, cid, [f['id']], type='image')
    share(alice, cid, [f['id']], type='image')
    assert alice.delete(f'conversations/{cid}/messages/{m1["id"]}').status \
        in (200, 204)
    assert download(bob, f).status == 200
    r = alice.get(f'conversations/{cid}/messages/{m1["id"]}')
    if r.status == 200:
        assert r.json['attachments'] == []


# attachment messages

def test_attachments_are_only_the_senders_own_uploads(tenant, new_tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    mine = uploaded(alice, b'a')
    theirs = uploaded(bob, b'b')
    elsewhere = uploaded(new_tenant().client('alice'), b'c')
    cid = alice.create('group', ['bob'])['id']
    for fid in (theirs['id'], elsewhere['id'], 99999999):
        expect_error(alice.post(f'conversations/{cid}/messages',
                                dict(type='file', attachments=[fid])),
                     400, 'attachments')
    expect_error(alice.post(f'conversations/{cid}/messages',
                            dict(type='image', content='no file')),
                 400, 'attachments')
    expect_error(alice.post(f'conversations/{cid}/messages',
                            dict(type='file', attachments=[mine['id']] * 11)),
                 400, 'attachments')
    m = share(alice, cid, [mine['id']])
    assert m['type'] == 'file'


def test_an_edit_keeps_the_attachments(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, png(), name='p.png')
    cid = alice.create('group', ['bob'])['id']
    m = share(alice, cid, [f['id']], type='image', content='before')
    r = alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                    {'content': 'after'})
    assert r.status == 200, r
    assert r.json['content'] == 'after'
    assert [a['id'] for a in r.json['attachments']] == [f['id']]


def test_attachments_over_websocket_reach_the_members(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, png(), name='p.png')
    cid = alice.create('group', ['bob'])['id']
    bob = ChatWS(tenant.nginx.port, tenant.token('bob'))
    bob.connect()
    bob.start()
    ws = ChatWS(tenant.nginx.port, tenant.token('alice'))
    ws.connect()
    ws.start()
    try:
        ack = ws.request('send_message', conversation_id=cid,
                         message_type='image', attachments=[f['id']])
        assert ack['type'] == 'ack', ack
        m = bob.wait(lambda e: e.get('type') == 'new_message'
                     and e['message']['conversation_id'] == cid)
        att = m['message']['attachments']
        assert att[0]['id'] == f['id'] and att[0]['kind'] == 'image'
        assert att[0]['thumbnail_url'] == f['thumbnail_url']
    finally:
        ws.close()
        bob.close()


def test_a_message_with_files_in_one_multipart_request(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    one, two = os.urandom(3000), png()
    r = post_form(alice, f'conversations/{cid}/messages', [
        ('content', 'two files'.encode(), None, None),
        ('type', b'image', None, None),
        ('client_id', b'form-1', None, None),
        ('file', one, 'one.bin', 'application/octet-stream'),
        ('file', two, 'two.png', 'image/png'),
    ])
    assert r.status == 201, r
    m = r.json
    assert m['content'] == 'two files' and m['type'] == 'image'
    assert [a['name'] for a in m['attachments']] == ['one.bin', 'two.png']
    assert download(bob, m['attachments'][0]).data == one
    assert download(bob, m['attachments'][1]).data == two

    # the text fields are checked as a JSON body's are, and the files of
    # a refused message are not kept
    before = rows_of(tenant, 'alice')
    expect_error(post_form(alice, f'conversations/{cid}/messages', [
        ('content', b'x', None, None), ('type', b'bogus', None, None),
        ('file', b'z', 'z', None)]), 400, 'type')
    expect_error(post_form(alice, f'conversations/{cid}/messages', [
        ('colour', b'red', None, None), ('file', b'z', 'z', None)]),
        400, 'colour')
    expect_error(post_form(alice, 'conversations/99999999/messages', [
        ('content', b'x', None, None), ('file', b'z', 'z', None)]), 404)
    assert rows_of(tenant, 'alice') == before
    # and a non-member uploads nothing into it
    before = rows_of(tenant, 'carol')
    expect_error(post_form(tenant.client('carol'),
                           f'conversations/{cid}/messages',
                           [('content', b'hi', None, None),
                            ('file', b'z', 'z', None)]), 404)
    assert rows_of(tenant, 'carol') == before


def rows_of(tenant, user):
    return tenant.stack.query(
        'SELECT count(*) FROM chat.files WHERE tenant_id = %s '
        'AND uploader_id = %s', (tenant.name, user))[0][0]


# the media of a conversation

def test_conversation_files_newest_first_by_kind_with_a_cursor(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    images = [uploaded(alice, png(10 + i, 10))['id'] for i in range(3)]
    doc = uploaded(alice, b'%PDF-1.4 doc')['id']
    share(alice, cid, images[:2], type='image')
    share(alice, cid, [doc])
    share(alice, cid, images[2:], type='image')

    r = bob.get(f'conversations/{cid}/files')
    assert r.status == 200, r
    got = [i['file']['id'] for i in r.json['items']]
    assert got == [images[2], doc, images[0], images[1]]
    assert r.json['items'][0]['sender_id'] == 'alice'

    r = bob.get(f'conversations/{cid}/files?type=image&limit=2')
    page1 = [i['file']['id'] for i in r.json['items']]
    assert page1 == [images[2], images[0]] and r.json['next_cursor']
    r = bob.get(f'conversations/{cid}/files?type=image&limit=2'
                f'&cursor={r.json["next_cursor"]}')
    assert [i['file']['id'] for i in r.json['items']] == [images[1]]
    assert r.json['next_cursor'] is None

    expect_error(bob.get(f'conversations/{cid}/files?type=pdf'), 400, 'type')
    expect_error(bob.get(f'conversations/{cid}/files?cursor=zz'), 400,
                 'cursor')
    expect_error(tenant.client('carol').get(f'conversations/{cid}/files'),
                 404)


# thumbnails

def exif_jpeg(w, h, orientation):
    """Left half red, right half blue, as stored; the EXIF says how to turn
    it to be seen."""
    im = Image.new('RGB', (w, h), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, w // 2, h))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, 'JPEG', exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_thumbnail_is_upright_smaller_and_valid(tenant):
    from PIL import ImageOps
    alice = tenant.client('alice')
    data = exif_jpeg(1200, 600, 6)
    f = uploaded(alice, data, content_type='image/jpeg', name='photo.jpg')
    assert f['kind'] == 'image' and (f['width'], f['height']) == (1200, 600)
    assert f['thumbnail_url'] == f['url'] + '/thumbnail'
    r = download(alice, f['thumbnail_url'])
    assert r.status == 200 and r.headers['Content-Type'] == 'image/jpeg'
    assert r.headers['ETag'] != download(alice, f).headers['ETag']
    thumb = Image.open(io.BytesIO(r.data))
    thumb.verify()
    thumb = Image.open(io.BytesIO(r.data)).convert('RGB')
    # orientation 6: turned a quarter clockwise, so 600 wide and 1200 high
    assert thumb.size == (160, 320)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    for y in (20, 300):
        want = shown.getpixel((300, y * shown.size[1] // 320))
        got = thumb.getpixel((80, y))
        assert all(abs(a - b) < 40 for a, b in zip(want, got)), (y, want, got)
    assert len(r.data) < len(data)


def test_no_thumbnail_for_what_is_not_an_image(tenant):
    alice = tenant.client('alice')
    f = uploaded(alice, b'%PDF-1.4 x')
    assert f['thumbnail_url'] is None
    expect_error(alice.get(f'files/{f["id"]}/thumbnail'), 404)


def worker_rss(nginx):
    total = 0
    for pid in nginx.worker_pids():
        status = pathlib.Path(f'/proc/{pid}/status').read_text()
        for line in status.split('\n'):
            if line.startswith('VmRSS:'):
                total += int(line.split()[1]) * 1024
    return total


def test_decompression_bomb_is_refused_before_decoding(tenant, stack):
    alice = tenant.client('alice')
    # 6000 x 6000: 36 million pixels (the limit is 16), a few kilobytes
    buf = io.BytesIO()
    Image.new('L', (6000, 6000), 0).save(buf, 'PNG')
    bomb = buf.getvalue()
    assert len(bomb) < 200 * 1024
    before = worker_rss(stack.main)
    f = uploaded(alice, bomb, content_type='image/png')
    assert (f['width'], f['height']) == (6000, 6000)
    assert f['thumbnail_url'] is None
    # and a header that lies about a huge size is not believed either
    lie = bytearray(png())
    lie[16:24] = (100000).to_bytes(4, 'big') * 2
    f = uploaded(alice, bytes(lie), content_type='image/png')
    assert f['thumbnail_url'] is None
    assert worker_rss(stack.main) - before < 64 * MiB
    assert stack.main.health() == 200


def test_a_broken_image_is_stored_without_a_thumbnail(tenant):
    alice = tenant.client('alice')
    data = png(300, 300)[:200]
    f = uploaded(alice, data, content_type='image/png')
    assert f['content_type'] == 'image/png' and f['thumbnail_url'] is None
    assert download(alice, f).data == data


# bad input

def test_malformed_multipart_is_refused_naming_the_fault(tenant, stack):
    alice = tenant.client('alice')
    before = rows(stack, tenant)
    good, ctype = multipart([('file', b'hello', 'h.txt', 'text/plain')])

    def send(body, content_type=ctype):
        return alice.post('files', raw=body,
                          headers={'Content-Type': content_type})

    expect_error(send(good, 'multipart/form-data'), 400, 'boundary')
    expect_error(send(good, 'multipart/form-data; boundary=' + 'x' * 71),
                 400, 'boundary')
    expect_error(send(good[:-20]), 400, 'closing boundary')
    expect_error(send(b''), 400)
    body, _ = multipart([('file', b'a', 'a', None), ('file', b'b', 'b', None)])
    expect_error(send(body), 400, 'one file')
    body, _ = multipart([('note', b'a', None, None)])
    expect_error(send(body), 400, 'note')
    body, _ = multipart([])
    expect_error(send(body), 400)
    long_header = (b'--XyZzY-b0undary\r\nContent-Disposition: form-data; '
                   b'name="file"; filename="a"\r\nX-Pad: ' + b'p' * 5000
                   + b'\r\n\r\nabc\r\n--XyZzY-b0undary--\r\n')
    expect_error(send(long_header), 400, 'headers are too long')
    garbage = (b'--XyZzY-b0undary\r\nContent-Disposition: form-data; '
               b'name="file"; filename="a"\r\n\r\nabc\r\n--XyZzY-b0undaryX'
               b'\r\n--XyZzY-b0undary--\r\n')
    expect_error(send(garbage), 400, 'boundary appears inside a part')
    no_disposition = (b'--XyZzY-b0undary\r\nContent-Type: text/plain\r\n\r\n'
                      b'abc\r\n--XyZzY-b0undary--\r\n')
    expect_error(send(no_disposition), 400, 'Content-Disposition')
    assert rows(stack, tenant) == before
    assert stack.main.health() == 200


def test_size_limit_before_and_while_reading(stack, tenant):
    ng = stack.nginx(name='files-small', EXTRA='chat_files_max 64k;')
    alice = tenant.client('alice', nginx=ng)
    assert upload(alice, b'x' * 65536).status == 201
    expect_error(upload(alice, b'x' * 65537), 413, 'chat_files_max')
    # chunked: no length to check first, so the bytes are counted
    expect_error(upload(alice, b'x' * (200 * 1024), chunked=True), 413,
                 'chat_files_max')
    body, ctype = multipart([('file', b'y' * 70000, 'y', None)])
    expect_error(alice.post('files', raw=body, chunked=True,
                            headers={'Content-Type': ctype}), 413)
    # a length announced past the limit is refused before any byte is sent
    s = socket.create_connection(('127.0.0.1', ng.port), timeout=10)
    s.sendall(f'POST /api/chat/files HTTP/1.1\r\nHost: x\r\n'
              f'Authorization: Bearer {tenant.token("alice")}\r\n'
              f'Content-Type: application/octet-stream\r\n'
              f'Content-Length: {10 * 1024 ** 3}\r\n\r\n'.encode())
    answer = s.recv(4096).decode()
    s.close()
    assert answer.startswith('HTTP/1.1 413'), answer
    assert 'payload_too_large' in answer
    assert not temp_files(ng)


def test_quota_per_user(stack, tenant):
    ng = stack.nginx(name='files-quota', EXTRA='chat_files_quota 10k;')
    alice = tenant.client('alice', nginx=ng)
    assert upload(alice, b'a' * 6000).status == 201
    r = upload(alice, b'b' * 6000)
    assert r.status == 413, r
    assert r.json['error']['code'] == 'quota_exceeded'
    assert '10240' in r.json['error']['message']
    # others have their own
    assert upload(tenant.client('bob', nginx=ng), b'c' * 6000).status == 201
    assert upload(alice, b'd' * 4000).status == 201
    assert not temp_files(ng)


def test_upload_needs_a_token_and_chat_files(stack, tenant):
    expect_error(upload(tenant.anonymous(), b'x'), 401)


def test_a_client_gone_mid_upload_leaves_no_temp_file_and_no_row(stack,
                                                                  tenant):
    before = rows(stack, tenant)
    for raw in (True, False):
        s = socket.create_connection(('127.0.0.1', stack.main.port),
                                     timeout=10)
        if raw:
            head = 'Content-Type: application/octet-stream\r\n'
            first = os.urandom(1 * MiB)
        else:
            head = 'Content-Type: multipart/form-data; boundary=B\r\n'
            first = (b'--B\r\nContent-Disposition: form-data; name="file"; '
                     b'filename="x"\r\n\r\n' + os.urandom(1 * MiB))
        s.sendall(f'POST /api/chat/files HTTP/1.1\r\nHost: x\r\n'
                  f'Authorization: Bearer {tenant.token("alice")}\r\n{head}'
                  f'Content-Length: {8 * MiB}\r\n\r\n'.encode() + first)
        time.sleep(0.3)
        s.close()
    deadline = time.time() + 10
    while temp_files(stack.main) and time.time() < deadline:
        time.sleep(0.1)
    assert not temp_files(stack.main)
    assert rows(stack, tenant) == before
    assert stack.main.health() == 200


# faults of the store

def test_store_unwritable_refuses_and_keeps_nothing(stack, tenant):
    ng = stack.nginx(name='files-ro')
    alice = tenant.client('alice', nginx=ng)
    store = ng.prefix / 'files'
    assert upload(alice, b'works').status == 201
    before = rows(stack, tenant)
    os.chmod(store, 0o555)
    try:
        data = os.urandom(2000)
        r = upload(alice, data)
        expect_error(r, 503, 'cannot be stored')
        assert rows(stack, tenant) == before
    finally:
        os.chmod(store, 0o700)
    # nginx logged why, naming the path
    assert re.search(r'\[crit\].*(mkdir|rename)\(\).*files-ro/files/',
                     ng.error_log.read_text())
    assert upload(alice, data).status == 201

    temp = ng.prefix / 'client_body_temp'
    os.chmod(temp, 0o555)
    try:
        r = post_form(alice, 'files', [('file', b'z' * 100, 'z', None)])
        expect_error(r, 507, 'cannot be stored')
    finally:
        os.chmod(temp, 0o700)
    assert rows(stack, tenant) == before + 1
    assert ng.health() == 200


def test_nginx_t_refuses_a_store_on_another_filesystem(check_config,
                                                       tmp_path):
    shm = pathlib.Path('/dev/shm')
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip('no second filesystem here')
    store = shm / f'chat-files-{os.getpid()}'
    try:
        out = check_config(FILES=str(store))
        assert out.returncode != 0
        assert 'chat_files' in out.stderr and 'filesystem' in out.stderr
    finally:
        subprocess.run(['rm', '-rf', str(store)])


@pytest.mark.parametrize('extra, fault', [
    ('chat_files_max 0;', 'chat_files_max'),
    ('chat_files_max lots;', 'chat_files_max'),
    ('chat_files_quota -1;', 'chat_files_quota'),
    ('chat_files_types nothing;', 'chat_files_types'),
    ('chat_thumbnails maybe;', 'chat_thumbnails'),
    ('chat_thumbnails on size=0;', 'chat_thumbnails'),
    ('chat_thumbnails on pool=nosuchpool;', 'nosuchpool'),
])
def test_bad_files_directives_are_refused_by_name(check_config, extra,
                                                  fault):
    out = check_config(EXTRA=extra)
    assert out.returncode != 0, out.stderr
    assert fault in out.stderr, out.stderr


# the collection of unused files

def test_files_gc_removes_orphans_and_unreferenced_bytes(stack, tenant):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    kept_data, gone_data, shared_data = (os.urandom(900) for _ in range(3))
    kept = uploaded(alice, kept_data)
    share(alice, cid, [kept['id']])
    gone = uploaded(alice, gone_data)
    twin_old = uploaded(alice, shared_data)
    twin_new = uploaded(tenant.client('bob'), shared_data)
    stack.query("UPDATE chat.files SET created_at = now() - interval '2 days'"
                " WHERE id IN (%s, %s, %s)",
                (kept['id'], gone['id'], twin_old['id']))
    store = stack.main.prefix / 'files'
    # the store's files are younger than the hour the script leaves alone
    for p in store_files(stack.main):
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    out = subprocess.run(
        [str(REPO / 'scripts' / 'files-gc'), '--conninfo', stack.pg.conninfo,
         '--store', str(store)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = {p.name for p in store_files(stack.main)}
    assert hashlib.sha256(kept_data).hexdigest() in names
    assert hashlib.sha256(gone_data).hexdigest() not in names
    assert hashlib.sha256(shared_data).hexdigest() in names
    assert download(alice, kept).status == 200
    expect_error(download(alice, gone), 404)
    expect_error(download(alice, twin_old), 404)
    assert download(tenant.client('bob'), twin_new).data == shared_data
    assert 'removed' in out.stdout
