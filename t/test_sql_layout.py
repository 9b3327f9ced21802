"""sql/: tables in numbered migrations, functions in files applied again on
every run, and the retention of chat.events.

A fresh database and one made by 0.1's migrations (t/data/sql-0.1) end up
the same after sql/migrate: the same functions, columns, constraints,
indexes, types and triggers, and the same records of migrations.
sql/migrate run again changes nothing; a changed migration and a database
with only some of 0.1's migrations are refused.  chat.events_prune deletes
old events in bounded batches and keeps each conversation's newest;
chat.events_after answers a position older than what is kept with one
marker row.

The layout tests make databases of their own in the suite's Postgres; the
retention tests work in the shared database, on events of their tenant
made old by hand.
"""

import re
import shutil
import subprocess
import uuid

import psycopg2
import pytest

import chatstack
from wsclient import ChatWS

SQL = chatstack.REPO / 'sql'
OLD = chatstack.REPO / 't' / 'data' / 'sql-0.1'
DEFINITION = re.compile(r'^CREATE (?:OR REPLACE )?FUNCTION (chat\.\w+)\(',
                        re.M)
OLD_NAMES = sorted(p.name for p in OLD.glob('[0-9][0-9][0-9]_*.sql'))

# what a database is made of, one line per object, sorted
STATE = {
    'functions': """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
          FROM pg_proc p
         WHERE p.pronamespace = 'chat'::regnamespace
    """,
    'columns': """
        SELECT table_name, column_name, ordinal_position, data_type,
               udt_name, is_nullable, column_default, is_generated,
               generation_expression, is_identity,
               character_maximum_length, collation_name
          FROM information_schema.columns
         WHERE table_schema = 'chat'
    """,
    'constraints': """
        SELECT conrelid::regclass::text, conname, contype::text,
               pg_get_constraintdef(oid), condeferrable, condeferred
          FROM pg_constraint
         WHERE connamespace = 'chat'::regnamespace
    """,
    'indexes': """
        SELECT tablename, indexname, indexdef
          FROM pg_indexes WHERE schemaname = 'chat'
    """,
    'relations': """
        SELECT relname, relkind::text, relpersistence::text
          FROM pg_class WHERE relnamespace = 'chat'::regnamespace
    """,
    'types': """
        SELECT t.typname, t.typtype::text,
               (SELECT string_agg(a.attname || ' '
                                  || format_type(a.atttypid, a.atttypmod),
                                  ', ' ORDER BY a.attnum)
                  FROM pg_attribute a
                 WHERE a.attrelid = t.typrelid AND a.attnum > 0
                   AND NOT a.attisdropped)
          FROM pg_type t WHERE t.typnamespace = 'chat'::regnamespace
    """,
    'triggers': """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
          FROM pg_trigger
         WHERE NOT tgisinternal
           AND tgrelid IN (SELECT oid FROM pg_class
                            WHERE relnamespace = 'chat'::regnamespace)
    """,
    'comments': """
        SELECT c.relname, a.attname, d.description
          FROM pg_description d
          JOIN pg_class c ON c.oid = d.objoid
                         AND d.classoid = 'pg_class'::regclass
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid
                                  AND a.attnum = d.objsubid
         WHERE c.relnamespace = 'chat'::regnamespace
    """,
    'migrations': """
        SELECT name, checksum FROM public.chat_migrations
    """,
}


def query(conninfo, sql, params=()):
    conn = psycopg2.connect(conninfo)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def state(conninfo):
    return {part: sorted(query(conninfo, sql), key=repr)
            for part, sql in STATE.items()}


def migrate(conninfo, script=SQL / 'migrate'):
    return subprocess.run([str(script), conninfo], capture_output=True,
                          text=True)


def migrated(conninfo, script=SQL / 'migrate'):
    out = migrate(conninfo, script)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def database(stack):
    """Makes empty databases owned by chat: database() -> conninfo."""
    made = []

    def make():
        name = 'layout_' + uuid.uuid4().hex[:10]
        stack.pg.sql(f'CREATE DATABASE {name} OWNER chat', user='postgres',
                     db='postgres')
        made.append(name)
        return stack.pg.conninfo.replace('dbname=chat', f'dbname={name}')

    yield make
    for name in made:
        stack.pg.sql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)',
                     user='postgres', db='postgres')


def old_layout(tmp_path, names=OLD_NAMES):
    """A folder with 0.1's sql/migrate and those of its migrations."""
    folder = tmp_path / 'sql-0.1'
    folder.mkdir()
    for name in names + ['migrate']:
        shutil.copy2(OLD / name, folder / name)
    return folder / 'migrate'


# the layout

def test_frozen_old_layout_is_the_nine_migrations_of_0_1():
    assert OLD_NAMES == [
        '001_schema.sql', '002_conversations.sql', '003_messages.sql',
        '004_realtime.sql', '005_presence.sql', '006_fast_json.sql',
        '007_lazy_commits.sql', '008_review_fixes.sql',
        '009_shown_presence_and_archive_for_all.sql']


def test_migrations_make_no_function_and_each_function_is_in_one_file():
    for path in sorted((SQL / 'migrations').glob('*.sql')):
        text = path.read_text().upper()
        assert 'CREATE FUNCTION' not in text, path.name
        assert 'CREATE OR REPLACE FUNCTION' not in text, path.name
        assert 'CREATE TRIGGER' not in text, path.name

    defined = {}
    for path in sorted((SQL / 'functions').glob('*.sql')):
        for name in DEFINITION.findall(path.read_text()):
            assert name not in defined, \
                f'{name} in {defined.get(name)} and {path.name}'
            defined[name] = path.name
    assert 'chat.events_after' in defined and 'chat.post' in defined


def test_fresh_and_old_layout_databases_end_up_identical(database, tmp_path):
    fresh = database()
    out = migrated(fresh)
    assert 'applied 001_schema.sql' in out.stdout

    old = database()
    migrated(old, old_layout(tmp_path))
    out = migrated(old)
    assert 'the 9 migrations of 0.1 are recorded as 001_schema.sql' \
        in out.stdout
    assert 'applied 001_schema.sql' not in out.stdout

    a, b = state(fresh), state(old)
    for part in STATE:
        assert a[part] == b[part], part
    assert len(a['functions']) > 70
    assert [name for name, _ in a['migrations']][0] == '001_schema.sql'


# indexes a later migration replaced by one that begins with its columns
REPLACED_INDEXES = {'members_user': 'members_user_joined'}

# unique constraints a later migration let go, with the plain index that
# took their place: the same bytes uploaded twice share one storage key
# (004_files.sql)
RELAXED_UNIQUE = {'files_storage_key_key': 'files_storage_key'}

# checks a later migration widened: the same name, more values allowed
# (006_polls.sql: messages may be polls)
WIDENED_CHECKS = {'messages_type_check', 'conversations_type_check'}


def replaced(index, indexes):
    """index (table, name, definition) was replaced by a wider one."""
    table, name, definition = index
    by = REPLACED_INDEXES.get(name)
    columns = definition[definition.index('(') + 1:definition.index(')')]
    return any(t == table and n == by and
               d[d.index('(') + 1:].startswith(columns + ',')
               for t, n, d in indexes)


def relaxed(item, after):
    """A unique constraint (or its index) let go for a plain index on the
    same column."""
    name = item[1] if len(item) > 1 else None
    by = RELAXED_UNIQUE.get(name)
    return by is not None and any(
        n == by and d.endswith(f'({name.split("_", 1)[1][:-4]})')
        for _, n, d in after['indexes'])


def test_fresh_database_keeps_everything_the_old_layout_made(database,
                                                             tmp_path):
    # what 0.1 made is all there (later migrations only add to it), and
    # every function it had still exists under the same signature
    only_old = database()
    migrated(only_old, old_layout(tmp_path))
    fresh = database()
    migrated(fresh)
    before, after = state(only_old), state(fresh)

    for part in STATE:
        if part in ('functions', 'migrations'):
            continue
        missing = set(before[part]) - set(after[part])
        if part == 'indexes':
            missing = {m for m in missing if not replaced(m, after[part])}
        if part == 'relations':
            missing = {m for m in missing if m[0] not in REPLACED_INDEXES
                       and m[0] not in RELAXED_UNIQUE}
        if part in ('constraints', 'indexes'):
            missing = {m for m in missing if not relaxed(m, after)}
        if part == 'constraints':
            missing = {m for m in missing if m[1] not in WIDENED_CHECKS
                       or not any(a[1] == m[1] for a in after[part])}
        if part == 'types':
            # a table's row type gains the columns added to the table
            missing = {m for m in missing
                       if not any(a[:2] == m[:2] and
                                  a[2].startswith(m[2] + ', ')
                                  for a in after[part])}
        assert not missing, (part, sorted(missing)[:5])

    old_functions = {name for name, _ in before['functions']}
    new_functions = {name for name, _ in after['functions']}
    assert old_functions <= new_functions, old_functions - new_functions


def test_migrate_run_again_changes_nothing(database):
    db = database()
    migrated(db)
    before = state(db)
    out = migrated(db)
    assert 'migrations up to date' in out.stdout
    assert 'applied' not in out.stdout
    assert out.stderr == ''
    assert state(db) == before


def test_a_changed_migration_is_refused(database, tmp_path):
    db = database()
    migrated(db)
    before = state(db)

    copy = tmp_path / 'sql'
    shutil.copytree(SQL, copy)
    baseline = copy / 'migrations' / '001_schema.sql'
    baseline.write_text(baseline.read_text() + '\n-- an edit\n')

    out = migrate(db, copy / 'migrate')
    assert out.returncode == 1
    assert '001_schema.sql changed after it was applied' in out.stderr
    assert state(db) == before


def test_an_old_layout_database_with_some_of_its_migrations_is_refused(
        database, tmp_path):
    db = database()
    migrated(db, old_layout(tmp_path, OLD_NAMES[:5]))
    before = state(db)

    out = migrate(db)
    assert out.returncode == 1
    assert 'only 5 of the 9 migrations of 0.1' in out.stderr
    assert "apply the rest with 0.1's sql/migrate first" in out.stderr
    assert state(db) == before


def test_an_old_layout_database_with_other_checksums_is_refused(database,
                                                                tmp_path):
    db = database()
    migrated(db, old_layout(tmp_path))
    query(db, "UPDATE public.chat_migrations SET checksum = 'edited' "
              "WHERE name = '005_presence.sql'")
    before = state(db)

    out = migrate(db)
    assert out.returncode == 1
    assert "named as 0.1's but not 0.1's own (1 differ)" in out.stderr
    assert state(db) == before


def test_migrate_on_a_live_database_keeps_the_module_serving(stack, tenant):
    # every function is made again: the module's prepared statements and
    # the sessions' plans must follow
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    assert alice.post(f'conversations/{cid}/messages',
                      dict(content='before')).status == 201

    out = migrated(stack.pg.conninfo)
    assert 'migrations up to date' in out.stdout

    for _ in range(10):
        r = alice.post(f'conversations/{cid}/messages', dict(content='after'))
        assert r.status == 201, r
    ws = ChatWS(stack.main.port, tenant.token('bob')).connect()
    try:
        ws.start({str(cid): 0})
        ws.until(lambda: len(ws.seqs(cid)) >= 11, 10, 'the replay')
        assert ws.seqs(cid) == list(range(1, 12))
    finally:
        ws.close()


# retention

KEEP = '30 days'


def prune(db, batch):
    with db.cursor() as cur:
        cur.execute('SELECT chat.events_prune(%s, %s)', (KEEP, batch))
        return cur.fetchone()[0]


def prune_all(db, batch=1000):
    calls = []
    while not calls or calls[-1] >= batch:
        calls.append(prune(db, batch))
    return calls


def events_after(db, ids, seqs, limit=100):
    with db.cursor() as cur:
        cur.execute('SELECT conversation_id, seq, wire '
                    'FROM chat.events_after(%s, %s, %s)',
                    (ids, seqs, limit))
        return cur.fetchall()


def conversation(tenant, messages):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    for i in range(messages):
        r = alice.post(f'conversations/{cid}/messages', dict(content=f'm{i}'))
        assert r.status == 201, r
    return cid


def age(db, cid, seqs, days=40, minutes=0):
    """Makes those events of cid that old (a minute apart by seq)."""
    with db.cursor() as cur:
        cur.execute("UPDATE chat.events SET created_at = now() "
                    "- %s * interval '1 day' + (seq * 2 + %s) "
                    "* interval '1 minute' "
                    "WHERE conversation_id = %s AND seq = ANY (%s)",
                    (days, minutes, cid, list(seqs)))


def kept(db, cid):
    with db.cursor() as cur:
        cur.execute('SELECT seq FROM chat.events WHERE conversation_id = %s '
                    'ORDER BY seq', (cid,))
        return [seq for seq, in cur.fetchall()]


@pytest.fixture
def db(side_db):
    """A session of the shared database in which no event is old."""
    conn = side_db(autocommit=True)
    prune_all(conn)
    return conn


def test_events_prune_deletes_in_bounded_batches_and_keeps_the_newest(
        tenant, db):
    a = conversation(tenant, 5)
    b = conversation(tenant, 4)
    # interleaved in time: a1 b1 a2 b2 ...
    age(db, a, range(1, 6))
    age(db, b, range(1, 5), minutes=1)

    assert prune_all(db, 3) == [3, 3, 1]
    assert kept(db, a) == [5]
    assert kept(db, b) == [4]
    assert prune(db, 3) == 0


def test_events_prune_leaves_events_younger_than_the_retention(tenant, db):
    cid = conversation(tenant, 5)
    age(db, cid, [1, 2])
    age(db, cid, [3], days=29)
    assert prune_all(db) == [2]
    assert kept(db, cid) == [3, 4, 5]


def test_events_prune_keeps_no_gap_before_an_old_event(tenant, db):
    # an event that took its seq before an old one, yet started later (its
    # writer waited for the lock), goes with the old one
    cid = conversation(tenant, 5)
    age(db, cid, [1, 3])
    age(db, cid, [2], days=1)
    assert prune_all(db) == [3]
    assert kept(db, cid) == [4, 5]


def test_events_after_marks_a_position_older_than_the_kept_events(tenant,
                                                                  db):
    cid = conversation(tenant, 4)
    age(db, cid, [1, 2])
    assert prune_all(db) == [2]

    assert events_after(db, [cid], [0]) == [(cid, 4, None)]
    assert events_after(db, [cid], [1]) == [(cid, 4, None)]
    rows = events_after(db, [cid], [2])
    assert [(c, s) for c, s, _ in rows] == [(cid, 3), (cid, 4)]
    assert all(w.startswith(f'{s}\n{{"type":"new_message"')
               for _, s, w in rows)
    assert events_after(db, [cid], [4]) == []


def test_events_after_marks_a_conversation_with_no_event_kept(tenant, db):
    gone = conversation(tenant, 2)
    with db.cursor() as cur:
        cur.execute('DELETE FROM chat.events WHERE conversation_id = %s',
                    (gone,))
    silent = conversation(tenant, 0)

    assert events_after(db, [gone], [0]) == [(gone, 2, None)]
    assert events_after(db, [gone], [2]) == []
    assert events_after(db, [silent], [0]) == []


def test_events_after_replays_kept_events_beside_a_marker(tenant, db):
    old = conversation(tenant, 3)
    age(db, old, [1])
    prune_all(db)
    whole = conversation(tenant, 3)

    rows = events_after(db, [whole, old], [0, 0], 2)
    assert [(c, s) for c, s, _ in rows] == sorted(
        [(old, 3), (whole, 1), (whole, 2)])
    marker = [r for r in rows if r[0] == old]
    assert marker == [(old, 3, None)]
    with db.cursor() as cur:
        cur.execute('SELECT seq, chat.wire(seq, type, subject, payload) '
                    'FROM chat.events WHERE conversation_id = %s '
                    'ORDER BY seq LIMIT 2', (whole,))
        assert [(whole, s, w) for s, w in cur.fetchall()] == \
            [r for r in rows if r[0] == whole]
