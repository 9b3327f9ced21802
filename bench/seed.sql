-- bench/seed.sql: the data of the benchmark, in tenant "bench", made with
-- generate_series.  bench/run sets the sizes (psql -v):
--
--   bcast         members of the broadcast conversation (users b0 ...)
--   bcast_small   members of a smaller one (b0 ...), for higher rates
--   mix_users     users of the chat mix (m0 ...), in groups of 5:
--   groups        mix_users / 5 groups, and
--   channels      channels of channel_size members each (owner posts)
--   idle          users of the idle runs (i0 ...), in groups of 5
--   writers       users w0 ... each alone in a group (the write scenario;
--                 their conversations get consecutive ids for pgbench)
--   reader_convs  conversations of the reader r0, one message each
--   hist          messages in one conversation of r0 (history pages)
--   invisible     1: users of the big crowds (b, m) chose "invisible", so
--                 that connecting them announces no presence (see
--                 docs/benchmarks.md: presence is measured on its own)
--
-- Events (chat.events) are not made for seeded messages: nobody resumes
-- from before the seed; new events come from the benchmark's own sends.

\set ON_ERROR_STOP 1

BEGIN;

INSERT INTO chat.tenants (id) VALUES ('bench');

INSERT INTO chat.users (tenant_id, id, name)
SELECT 'bench', u, NULL
  FROM (SELECT 'b' || g AS u FROM generate_series(0, :bcast - 1) g
        UNION ALL
        SELECT 'm' || g FROM generate_series(0, :mix_users - 1) g
        UNION ALL
        SELECT 'i' || g FROM generate_series(0, :idle - 1) g
        UNION ALL
        SELECT 'w' || g FROM generate_series(0, :writers - 1) g
        UNION ALL
        SELECT 'r0') x;


-- the broadcast: one group of everyone, b0 sends

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
VALUES ('bench', 'group', 'broadcast', 'b0', :bcast)
RETURNING id AS bcast_id \gset

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT :bcast_id, 'bench', 'b' || g,
       CASE WHEN g = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, :bcast - 1) g;

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
VALUES ('bench', 'group', 'broadcast-small', 'b0', :bcast_small)
RETURNING id AS small_id \gset

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT :small_id, 'bench', 'b' || g,
       CASE WHEN g = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, :bcast_small - 1) g;


-- the chat mix: groups of 5, and channels that overlap so that each user
-- is in channels * channel_size / mix_users of them

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
SELECT 'bench', 'group', 'mg' || g, 'm' || (g * 5), 5
  FROM generate_series(0, :groups - 1) g;

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT c.id, 'bench', 'm' || (g * 5 + k),
       CASE WHEN k = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, :groups - 1) g
 CROSS JOIN generate_series(0, 4) k
  JOIN chat.conversations c ON c.tenant_id = 'bench' AND c.title = 'mg' || g;

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
SELECT 'bench', 'channel', 'mc' || g,
       'm' || (g * (:mix_users / :channels)), :channel_size
  FROM generate_series(0, :channels - 1) g;

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT c.id, 'bench', 'm' || ((g * (:mix_users / :channels) + k)
                              % :mix_users),
       CASE WHEN k = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, :channels - 1) g
 CROSS JOIN generate_series(0, :channel_size - 1) k
  JOIN chat.conversations c ON c.tenant_id = 'bench' AND c.title = 'mc' || g;


-- idle users, in groups of 5

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
SELECT 'bench', 'group', 'ig' || g, 'i' || (g * 5), 5
  FROM generate_series(0, :idle / 5 - 1) g;

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT c.id, 'bench', 'i' || (g * 5 + k),
       CASE WHEN k = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, :idle / 5 - 1) g
 CROSS JOIN generate_series(0, 4) k
  JOIN chat.conversations c ON c.tenant_id = 'bench' AND c.title = 'ig' || g;


-- writers: one statement, so that the ids follow each other

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
SELECT 'bench', 'group', 'wg' || g, 'w' || g, 1
  FROM generate_series(0, :writers - 1) g
 ORDER BY g;

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT c.id, 'bench', c.owner_id, 'owner'
  FROM chat.conversations c
 WHERE c.tenant_id = 'bench' AND c.title LIKE 'wg%';


-- the reader: many conversations with a message each, and one long history

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count, last_activity_at)
SELECT 'bench', 'group', 'rc' || g, 'r0', 1,
       now() - make_interval(secs => g * 37 % 86400)
  FROM generate_series(0, :reader_convs - 1) g;

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
SELECT c.id, 'bench', 'r0', 'owner'
  FROM chat.conversations c
 WHERE c.tenant_id = 'bench' AND c.title LIKE 'rc%';

INSERT INTO chat.messages (conversation_id, tenant_id, seq, message_no,
                           sender_id, type, content, created_at)
SELECT c.id, 'bench', 1, 1, 'r0', 'text',
       'the last message of ' || c.title, c.last_activity_at
  FROM chat.conversations c
 WHERE c.tenant_id = 'bench' AND c.title LIKE 'rc%';

INSERT INTO chat.conversations (tenant_id, type, title, owner_id,
                                member_count)
VALUES ('bench', 'group', 'history', 'r0', 1)
RETURNING id AS hist_id \gset

INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)
VALUES (:hist_id, 'bench', 'r0', 'owner');

INSERT INTO chat.messages (conversation_id, tenant_id, seq, message_no,
                           sender_id, type, content, created_at)
SELECT :hist_id, 'bench', g, g, 'r0', 'text',
       'message ' || g || ' of a long history: a sentence of ordinary '
       || 'length, as people write them in a chat',
       now() - make_interval(secs => :hist - g)
  FROM generate_series(1, :hist) g;

UPDATE chat.conversations c
   SET last_seq = x.n, message_count = x.n, last_message_id = x.last_id
  FROM (SELECT conversation_id, max(seq) AS n, max(id) AS last_id
          FROM chat.messages WHERE tenant_id = 'bench'
         GROUP BY conversation_id) x
 WHERE c.id = x.conversation_id;

UPDATE chat.members m
   SET last_read_seq = c.last_seq, read_message_count = c.message_count,
       last_delivered_seq = c.last_seq
  FROM chat.conversations c
 WHERE m.conversation_id = c.id AND c.tenant_id = 'bench'
   AND c.last_seq > 0;


-- presence: the big crowds are invisible (see above)

INSERT INTO chat.presence (tenant_id, user_id, status)
SELECT 'bench', id, 'invisible'
  FROM chat.users
 WHERE tenant_id = 'bench' AND :invisible = 1
   AND (id LIKE 'b%' OR id LIKE 'm%');

COMMIT;
