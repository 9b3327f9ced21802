-- ngx_chat: the stream of a conversation and the Redis channels.
--
-- Every change of a conversation takes the next seq of its stream
-- (next_seq, under the conversation's row lock), stores its event in
-- chat.events as the JSON clients receive, and returns the publication of
-- it for the module to put on Redis.

CREATE FUNCTION chat.next_seq(p_conversation bigint) RETURNS bigint
LANGUAGE sql AS $$
    UPDATE chat.conversations SET last_seq = last_seq + 1
     WHERE id = p_conversation
    RETURNING last_seq
$$;

-- Redis channels, below the prefix the module adds: a conversation's
-- stream, and each user's own (for what concerns them in a conversation
-- they do not yet follow)
CREATE FUNCTION chat.conversation_channel(p_conversation bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'c:' || p_conversation
$$;

CREATE FUNCTION chat.user_channel(p_tenant text, p_user text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'u:' || octet_length(p_tenant) || ':' || p_tenant || ':' || p_user
$$;

-- a user's presence: the workers of those who watch it subscribe to it
CREATE FUNCTION chat.presence_channel(p_tenant text, p_user text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'p:' || octet_length(p_tenant) || ':' || p_tenant || ':' || p_user
$$;

-- What goes on the wire for an event: a header line, "<seq>" and for a
-- member change " +<user>" or " -<user>", then the event itself.  Workers
-- route by the header and never parse the event; live and replayed events
-- are the same bytes.
CREATE FUNCTION chat.wire(p_seq bigint, p_type text, p_subject text,
                          p_payload text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT p_seq
           || CASE p_type WHEN 'member_added' THEN ' +' || p_subject
                          WHEN 'member_removed' THEN ' -' || p_subject
                          ELSE '' END
           || E'\n' || p_payload
$$;

-- Stores an event of a conversation and returns its publication.  p_data
-- is the rest of the event object, as JSON members ("a":1,"b":2).
CREATE FUNCTION chat.emit(p_conversation bigint, p_seq bigint, p_type text,
                          p_data text, p_message_id bigint DEFAULT NULL,
                          p_subject text DEFAULT NULL)
RETURNS chat.reply LANGUAGE plpgsql AS $$
DECLARE
    v_event text;
BEGIN
    v_event := '{"type":' || to_json(p_type)
            || ',"conversation_id":' || p_conversation
            || ',"seq":' || p_seq
            || CASE WHEN p_data IS NULL THEN '' ELSE ',' || p_data END
            || '}';

    INSERT INTO chat.events (conversation_id, seq, type, message_id,
                             subject, payload)
    VALUES (p_conversation, p_seq, p_type, p_message_id, p_subject,
            v_event);

    RETURN ROW(NULL, chat.conversation_channel(p_conversation),
               chat.wire(p_seq, p_type, p_subject, v_event))::chat.reply;
END
$$;

-- A message on a user's own channel: "follow <conversation> <seq>" (start
-- following it there; the JSON, if any, is delivered first) or "event"
-- (deliver the JSON to the user's connections).
CREATE FUNCTION chat.notify(p_tenant text, p_user text, p_header text,
                            p_event text)
RETURNS chat.reply LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(NULL, chat.user_channel(p_tenant, p_user),
               p_header || E'\n' || coalesce(p_event, ''))::chat.reply
$$;

-- an ephemeral event of a conversation: no seq, not stored
CREATE FUNCTION chat.signal(p_conversation bigint, p_type text, p_data text)
RETURNS chat.reply LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(NULL, chat.conversation_channel(p_conversation),
               '0' || E'\n' || '{"type":' || to_json(p_type)
               || ',"conversation_id":' || p_conversation || ','
               || p_data || '}')::chat.reply
$$;
