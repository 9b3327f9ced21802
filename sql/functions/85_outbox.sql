-- ngx_chat: the outbox (sql/migrations/005_outbox.sql).  chat.post calls
-- chat.outbox_add in the message's transaction; the module's workers call
-- chat.outbox_claim and chat.outbox_result (src/ngx_chat_outbox.c).  The
-- module turns it on by telling its connections chat.outbox_window (the
-- seconds a notification waits for more to join it); without it nothing
-- is written.

-- Who hears of a new message while away: the other member of a direct
-- conversation, who it mentions, the author of what it replies to; not
-- the sender, nor a member who muted the conversation.  The window opens
-- with a user's first waiting row: later rows take its due time, so what
-- comes within the window goes as one delivery however slowly it came.
CREATE FUNCTION chat.outbox_add(c chat.conversations, msg chat.messages)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_window integer := nullif(current_setting('chat.outbox_window', true),
                               '')::integer;
BEGIN
    IF v_window IS NULL THEN
        RETURN;
    END IF;

    -- a bot hears of every message of its conversations at once, but its
    -- own and other bots' (no two bots talk each other into a loop)
    -- (from the tenant's few bots to their memberships: never a scan of
    -- a big conversation's members for each message)
    INSERT INTO chat.outbox (tenant_id, user_id, conversation_id,
                             message_id, seq, reason, due_at)
    SELECT c.tenant_id, u.id, c.id, msg.id, msg.seq, 'bot', now()
      FROM chat.users u
      JOIN chat.members m ON m.conversation_id = c.id AND m.user_id = u.id
     WHERE u.tenant_id = c.tenant_id AND u.bot AND NOT msg.bot
       AND u.id <> msg.sender_id;

    INSERT INTO chat.outbox (tenant_id, user_id, conversation_id,
                             message_id, seq, reason, due_at)
    SELECT c.tenant_id, r.user_id, c.id, msg.id, msg.seq, r.reason,
           coalesce((SELECT min(w.due_at) FROM chat.outbox w
                      WHERE w.tenant_id = c.tenant_id
                        AND w.user_id = r.user_id
                        AND w.batch IS NULL AND w.due_at > now()),
                    now() + make_interval(secs => v_window))
      FROM (SELECT DISTINCT ON (x.user_id) x.user_id, x.reason
              FROM (SELECT m.user_id, 'direct' AS reason, 1 AS rank
                      FROM chat.members m
                     WHERE c.type IN ('direct', 'bot')
                       AND m.conversation_id = c.id
                    UNION ALL
                    SELECT u, 'mention', 2 FROM unnest(msg.mentions) u
                    UNION ALL
                    SELECT p.sender_id, 'reply', 3 FROM chat.messages p
                     WHERE p.id = msg.reply_to) x
             ORDER BY x.user_id, x.rank) r
      JOIN chat.members m ON m.conversation_id = c.id
                         AND m.user_id = r.user_id
      JOIN chat.users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
     WHERE r.user_id <> msg.sender_id AND NOT u.bot
       AND (m.muted_until IS NULL OR m.muted_until <= now());
END
$$;

-- Due rows, a delivery a user: the users whose rows are due, the longest
-- waiting first, up to p_users, each with all of its rows that are not
-- leased (due or not: what comes within the window goes as one), leased
-- for p_lease (a worker that dies leaves them to the next claim).  A
-- user's rows are taken by one claim at a time (an advisory lock a user,
-- for the transaction), so that two workers never split them.  What was
-- read meanwhile, deleted, or is no longer the user's to see goes without
-- a word; rows of one user that were never tried join one delivery.
-- Returns (batch, tenant, user, the delivery's JSON, whether it is for a
-- bot: sent whether the bot is connected or not, each item with the
-- message's whole content).
CREATE FUNCTION chat.outbox_claim(p_lease interval, p_users integer)
RETURNS TABLE (batch bigint, tenant_id text, user_id text, body text,
               bot boolean)
LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS outbox_claimed (id bigint)
        ON COMMIT DROP;

    INSERT INTO outbox_claimed
    WITH due AS (
        SELECT o.tenant_id, o.user_id, min(o.due_at) AS first
          FROM chat.outbox o
         WHERE o.due_at <= now()
           AND (o.leased_until IS NULL OR o.leased_until < now())
         GROUP BY o.tenant_id, o.user_id
         ORDER BY first
         LIMIT p_users
    ), mine AS (
        SELECT d.tenant_id, d.user_id FROM due d
         WHERE pg_try_advisory_xact_lock(7240063,
                   hashtext(d.tenant_id || E'\n' || d.user_id))
    )
    -- a retried delivery keeps its backoff; new rows go with the due ones
    SELECT o.id FROM chat.outbox o
      JOIN mine m ON m.tenant_id = o.tenant_id AND m.user_id = o.user_id
     WHERE (o.leased_until IS NULL OR o.leased_until < now())
       AND (o.due_at <= now() OR o.batch IS NULL)
       FOR UPDATE OF o SKIP LOCKED;

    -- seen, gone, or out of reach: nothing to say
    DELETE FROM chat.outbox o
     USING outbox_claimed k
     WHERE o.id = k.id
       AND NOT EXISTS (SELECT 1 FROM chat.members m
                         JOIN chat.messages g ON g.id = o.message_id
                        WHERE m.conversation_id = o.conversation_id
                          AND m.user_id = o.user_id
                          AND m.last_read_seq < o.seq
                          AND g.deleted_at IS NULL);

    -- a user's new rows become one delivery, named by its first row
    UPDATE chat.outbox o
       SET batch = f.first
      FROM (SELECT x.tenant_id, x.user_id, min(x.id) AS first
              FROM chat.outbox x JOIN outbox_claimed k ON k.id = x.id
             WHERE x.batch IS NULL
             GROUP BY x.tenant_id, x.user_id) f
     WHERE o.id IN (SELECT id FROM outbox_claimed) AND o.batch IS NULL
       AND o.tenant_id = f.tenant_id AND o.user_id = f.user_id;

    RETURN QUERY
    WITH picked AS (
        SELECT DISTINCT o.batch FROM chat.outbox o
          JOIN outbox_claimed k ON k.id = o.id
    ), leased AS (
        UPDATE chat.outbox o
           SET leased_until = now() + p_lease, attempts = o.attempts + 1
          FROM picked p
         WHERE o.batch = p.batch
        RETURNING o.*
    )
    SELECT l.batch, min(l.tenant_id), min(l.user_id),
           json_build_object(
               'type', 'notification',
               'tenant_id', min(l.tenant_id), 'user_id', min(l.user_id),
               'count', count(*),
               'items', jsonb_agg(jsonb_build_object(
                   'reason', l.reason, 'conversation_id', l.conversation_id,
                   'message_id', l.message_id, 'seq', l.seq,
                   'sender_id', g.sender_id, 'type', g.type,
                   'preview', left(g.content, 140),
                   'title', c.title,
                   'created_at', chat.ts(g.created_at))
                   || CASE WHEN l.reason = 'bot'
                           THEN jsonb_build_object('content', g.content,
                                                   'conversation_type',
                                                   c.type)
                           ELSE '{}' END
                   ORDER BY l.id))::text,
           bool_or(l.reason = 'bot')
      FROM leased l
      JOIN chat.messages g ON g.id = l.message_id
      JOIN chat.conversations c ON c.id = l.conversation_id
     GROUP BY l.batch;
END
$$;

-- What became of a delivery: 'sent' (it goes), 'online' (the user came
-- back: wait as for a new row, but never past an hour), 'failed' (again
-- after a backoff that doubles from 1 s up to an hour, with jitter, or
-- after the receiver's Retry-After; past p_max_age into outbox_dead).
CREATE FUNCTION chat.outbox_result(p_batch bigint, p_outcome text,
                                   p_error text, p_retry_after integer,
                                   p_window integer, p_max_age interval)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_outcome = 'sent' THEN
        DELETE FROM chat.outbox WHERE batch = p_batch;
        RETURN;
    END IF;

    IF p_outcome = 'online' THEN
        DELETE FROM chat.outbox
         WHERE batch = p_batch AND created_at < now() - interval '1 hour';
        UPDATE chat.outbox
           SET leased_until = NULL, attempts = attempts - 1,
               due_at = now() + make_interval(secs => p_window)
         WHERE batch = p_batch;
        RETURN;
    END IF;

    WITH dead AS (
        DELETE FROM chat.outbox
         WHERE batch = p_batch AND created_at < now() - p_max_age
        RETURNING *
    )
    INSERT INTO chat.outbox_dead
    SELECT d.id, d.tenant_id, d.user_id, d.conversation_id, d.message_id,
           d.seq, d.reason, d.created_at, d.due_at, d.batch, d.leased_until,
           d.attempts, p_error, now()
      FROM dead d;

    UPDATE chat.outbox
       SET leased_until = NULL, last_error = p_error,
           due_at = now() + make_interval(secs => greatest(
               coalesce(p_retry_after, 0),
               least(3600, 2 ^ least(attempts - 1, 12))
               * (0.5 + random() / 2)))
     WHERE batch = p_batch;
END
$$;
