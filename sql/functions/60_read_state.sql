-- ngx_chat: read positions, unread counts and receipts.

-- The read position never moves back and never passes last_seq.  No seq:
-- the other members learn it as a read_receipt signal.
CREATE FUNCTION chat.api_conversation_read(p_tenant text, p_user text,
                                           p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    e     record;
    v_seq bigint;
    v_no  bigint;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    v_seq := least(coalesce((a->>'seq')::bigint, (e.c).last_seq),
                   (e.c).last_seq);

    IF v_seq <= (e.m).last_read_seq THEN
        RETURN NEXT chat.answer(200, '{"last_read_seq":'
                                     || (e.m).last_read_seq || '}');
        RETURN;
    END IF;

    SELECT message_no INTO v_no FROM chat.messages
     WHERE conversation_id = (e.c).id AND seq <= v_seq
     ORDER BY seq DESC LIMIT 1;

    UPDATE chat.members
       SET last_read_seq = greatest(last_read_seq, v_seq),
           read_message_count = greatest(read_message_count,
                                         coalesce(v_no, 0)),
           last_delivered_seq = greatest(last_delivered_seq, v_seq)
     WHERE conversation_id = (e.c).id AND user_id = p_user
    RETURNING last_read_seq INTO v_seq;

    RETURN NEXT chat.answer(200, '{"last_read_seq":' || v_seq || '}');
    RETURN NEXT chat.signal((e.c).id, 'read_receipt',
                            chat.kv('user_id', to_json(p_user)) || ','
                            || chat.kv('seq', to_json(v_seq)));
END
$$;

-- Counts, not scans: unread messages are a difference of counters; unread
-- mentions are read from the user's mentions after its positions.
CREATE FUNCTION chat.api_unread(p_tenant text, p_user text,
                                p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_body text;
BEGIN
    WITH mine AS (
        SELECT m.conversation_id, m.last_read_seq,
               c.message_count - m.read_message_count AS unread_count
          FROM chat.members m
          JOIN chat.conversations c ON c.id = m.conversation_id
         WHERE m.tenant_id = p_tenant AND m.user_id = p_user
    ), mentioned AS (
        SELECT x.conversation_id, count(*) AS unread_mentions
          FROM chat.mentions x
          JOIN mine ON mine.conversation_id = x.conversation_id
                   AND x.seq > mine.last_read_seq
         WHERE x.tenant_id = p_tenant AND x.user_id = p_user
         GROUP BY x.conversation_id
    ), counts AS (
        SELECT mine.conversation_id AS id, mine.unread_count,
               coalesce(mentioned.unread_mentions, 0) AS unread_mentions
          FROM mine
          LEFT JOIN mentioned USING (conversation_id)
    )
    SELECT '{"total":' || coalesce(sum(unread_count), 0)
           || ',"conversations":['
           || coalesce(string_agg(row_to_json(counts)::text, ','
                                  ORDER BY id)
                       FILTER (WHERE unread_count > 0
                               OR unread_mentions > 0), '')
           || ']}'
      INTO v_body
      FROM counts;

    RETURN NEXT chat.answer(200, v_body);
END
$$;

-- who has the message: derived from the positions of the members who
-- were there when it came, no row per message and reader
CREATE FUNCTION chat.api_receipts(p_tenant text, p_user text, p_name text,
                                  a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
    m chat.messages;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);
    m := chat.message_in((e.c).id, (a->>'message_id')::bigint);

    RETURN NEXT chat.answer(200, (
        SELECT '{"read_by":' || coalesce(json_agg(x.user_id
                       ORDER BY x.user_id)
                       FILTER (WHERE x.last_read_seq >= m.seq), '[]')
               || ',"delivered_to":' || coalesce(json_agg(x.user_id
                       ORDER BY x.user_id)
                       FILTER (WHERE greatest(x.last_read_seq,
                                              x.last_delivered_seq)
                                     >= m.seq), '[]') || '}'
          FROM chat.members x
         WHERE x.conversation_id = (e.c).id AND x.user_id <> m.sender_id
           AND x.joined_seq < m.seq));
END
$$;
