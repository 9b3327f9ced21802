-- ngx_chat: what WebSocket connections read from Postgres.  Redis carries
-- the news; these queries make a connection whole when it starts, resumes,
-- or notices a gap in a conversation's seqs.

-- the conversations a user follows, where each stands now, and since when
-- the user is in it (0: since it was made)
CREATE FUNCTION chat.ws_memberships(p_tenant text, p_user text)
RETURNS TABLE (conversation_id bigint, last_seq bigint, joined_seq bigint)
LANGUAGE sql STABLE AS $$
    SELECT m.conversation_id, c.last_seq, m.joined_seq
      FROM chat.members m
      JOIN chat.conversations c ON c.id = m.conversation_id
     WHERE m.tenant_id = p_tenant AND m.user_id = p_user
$$;

-- Events after given positions, in order, at most p_limit for each
-- conversation (a caller that gets p_limit asks again from there).  Each
-- is the wire form that Redis carried.
CREATE FUNCTION chat.events_after(p_ids bigint[], p_seqs bigint[],
                                  p_limit integer)
RETURNS TABLE (conversation_id bigint, seq bigint, wire text)
LANGUAGE sql STABLE AS $$
    SELECT e.conversation_id, e.seq,
           chat.wire(e.seq, e.type, e.subject, e.payload)
      FROM unnest(p_ids, p_seqs) AS w(id, after)
     CROSS JOIN LATERAL (
           SELECT * FROM chat.events x
            WHERE x.conversation_id = w.id AND x.seq > w.after
            ORDER BY x.seq
            LIMIT p_limit) e
     ORDER BY e.conversation_id, e.seq
$$;

-- How far each connection got: receipts tell who has a message delivered.
-- The module reports positions in batches; a position never moves back.
CREATE FUNCTION chat.delivered(p_tenants text[], p_users text[],
                               p_ids bigint[], p_seqs bigint[])
RETURNS void LANGUAGE sql AS $$
    UPDATE chat.members m
       SET last_delivered_seq = d.seq
      FROM unnest(p_tenants, p_users, p_ids, p_seqs)
           AS d(tenant_id, user_id, conversation_id, seq)
     WHERE m.conversation_id = d.conversation_id
       AND m.user_id = d.user_id AND m.tenant_id = d.tenant_id
       AND m.last_delivered_seq < d.seq
$$;
