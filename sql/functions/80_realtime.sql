-- ngx_chat: what WebSocket connections read from Postgres.  Redis carries
-- the news; these queries make a connection whole when it starts, resumes,
-- or notices a gap in a conversation's seqs.

-- the conversations a user follows, where each stands now, since when the
-- user is in it (0: since it was made), and the other member of a direct
-- conversation (whose presence the connection watches)
CREATE FUNCTION chat.ws_memberships(p_tenant text, p_user text)
RETURNS TABLE (conversation_id bigint, last_seq bigint, joined_seq bigint,
               peer text)
LANGUAGE sql STABLE AS $$
    SELECT m.conversation_id, c.last_seq, m.joined_seq,
           CASE WHEN c.type = 'direct' THEN
               (SELECT o.user_id FROM chat.members o
                 WHERE o.conversation_id = m.conversation_id
                   AND o.user_id <> p_user)
           END
      FROM chat.members m
      JOIN chat.conversations c ON c.id = m.conversation_id
     WHERE m.tenant_id = p_tenant AND m.user_id = p_user
$$;

-- What users joined in the last p_ages seconds (and a minute more, for the
-- transactions that began before and committed after), for users named by
-- their channels (chat.user_channel): a worker that may have missed their
-- "follow" notices (it was not subscribed yet, or Redis was away) reads
-- them back here, for many users in one statement.  Ages, not times: the
-- hosts' clocks need not agree with Postgres.
CREATE FUNCTION chat.ws_follows_since(p_channels text[], p_ages bigint[])
RETURNS TABLE (channel text, conversation_id bigint, joined_seq bigint,
               peer text)
LANGUAGE sql STABLE AS $$
    WITH asked AS (
        SELECT x.channel, x.age, t.len, length(t.len::text) AS digits
          FROM unnest(p_channels, p_ages) AS x(channel, age)
         CROSS JOIN LATERAL (
               SELECT (regexp_match(x.channel, '^u:([0-9]{1,3}):'))[1]::integer
                      AS len) t
         WHERE t.len IS NOT NULL
    ), users AS (
        SELECT a.channel, a.age,
               substr(a.channel, 4 + a.digits, a.len) AS tenant_id,
               substr(a.channel, 5 + a.digits + a.len) AS user_id
          FROM asked a
    )
    SELECT u.channel, m.conversation_id, m.joined_seq,
           CASE WHEN c.type = 'direct' THEN
               (SELECT o.user_id FROM chat.members o
                 WHERE o.conversation_id = m.conversation_id
                   AND o.user_id <> u.user_id)
           END
      FROM users u
      JOIN chat.members m ON m.tenant_id = u.tenant_id
                         AND m.user_id = u.user_id
                         AND m.joined_at >= now()
                             - (u.age + 60) * interval '1 second'
      JOIN chat.conversations c ON c.id = m.conversation_id
$$;

-- Events after given positions, in order, at most p_limit for each
-- conversation (a caller that gets p_limit asks again from there).  Each
-- is the wire form that Redis carried.
--
-- Events are kept for a while, not for ever (chat.events_prune).  For a
-- position older than what is kept of its conversation (the first event
-- kept is past after + 1, or none is kept and the conversation went on)
-- the conversation has one row instead of events: (id, last_seq, NULL),
-- the marker that what came before is gone: the client jumps to last_seq
-- and reloads from history.
CREATE FUNCTION chat.events_after(p_ids bigint[], p_seqs bigint[],
                                  p_limit integer)
RETURNS TABLE (conversation_id bigint, seq bigint, wire text)
LANGUAGE sql STABLE AS $$
    SELECT w.id, e.seq, e.wire
      FROM unnest(p_ids, p_seqs) AS w(id, after)
     CROSS JOIN LATERAL (
           SELECT min(f.seq) AS seq FROM chat.events f
            WHERE f.conversation_id = w.id) kept
     CROSS JOIN LATERAL (
           (SELECT x.seq, chat.wire(x.seq, x.type, x.subject, x.payload)
              FROM chat.events x
             WHERE kept.seq <= w.after + 1
               AND x.conversation_id = w.id AND x.seq > w.after
             ORDER BY x.seq
             LIMIT p_limit)
           UNION ALL
           SELECT c.last_seq, NULL
             FROM chat.conversations c
            WHERE (kept.seq IS NULL OR kept.seq > w.after + 1)
              AND c.id = w.id AND c.last_seq > w.after) e (seq, wire)
     ORDER BY w.id, e.seq
$$;

-- Deletes the events older than p_keep, the oldest first, at most p_batch
-- of them and with them the few younger ones that precede one of them in
-- its conversation (a writer that waited for the conversation's lock took
-- its seq after one that started later), and returns how many went: less
-- than p_batch when nothing is left to delete.  The newest event of a
-- conversation stays, however old: what is kept of a conversation is
-- always an unbroken run of seqs up to its newest event, which
-- chat.events_after tells a too old position from.
CREATE FUNCTION chat.events_prune(p_keep interval, p_batch integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    v_rows  bigint;
    v_total bigint := 0;
BEGIN
    -- one range of the primary key per conversation
    FOR r IN
        SELECT old.conversation_id, max(old.seq) AS seq
          FROM (SELECT e.conversation_id, e.seq
                  FROM chat.events e
                 WHERE e.created_at < now() - p_keep
                   AND EXISTS (SELECT 1 FROM chat.events n
                                WHERE n.conversation_id = e.conversation_id
                                  AND n.seq > e.seq)
                 ORDER BY e.created_at
                 LIMIT p_batch) old
         GROUP BY old.conversation_id
         ORDER BY old.conversation_id
    LOOP
        DELETE FROM chat.events
         WHERE conversation_id = r.conversation_id AND seq <= r.seq;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_total := v_total + v_rows;
    END LOOP;

    RETURN v_total;
END
$$;

-- How far each connection got: receipts tell who has a message delivered.
-- The module reports positions in batches; a position never moves back.
-- They commit lazily (chat.commit_lazily): the next report writes again
-- what a crash lost.
CREATE FUNCTION chat.delivered(p_tenants text[], p_users text[],
                               p_ids bigint[], p_seqs bigint[])
RETURNS void LANGUAGE sql AS $$
    SELECT chat.commit_lazily();
    UPDATE chat.members m
       SET last_delivered_seq = d.seq
      FROM unnest(p_tenants, p_users, p_ids, p_seqs)
           AS d(tenant_id, user_id, conversation_id, seq)
     WHERE m.conversation_id = d.conversation_id
       AND m.user_id = d.user_id AND m.tenant_id = d.tenant_id
       AND m.last_delivered_seq < d.seq
$$;
