-- ngx_chat: full-text search over a user's conversations.

-- Whole words, the last one also as a prefix, no stemming: the words are
-- the lexemes the same parser made of the messages ("simple"), so that an
-- address, a host or a number is found as it was written.
CREATE FUNCTION chat.search_query(p_text text) RETURNS tsquery
LANGUAGE sql STABLE AS $$
    SELECT to_tsquery('simple', string_agg(
               quote_literal(w) || CASE WHEN n = last THEN ':*' ELSE '' END,
               ' & ' ORDER BY n))
      FROM (SELECT w, row_number() OVER (ORDER BY t, l) AS n,
                   count(*) OVER () AS last
              FROM ts_debug('simple', p_text) WITH ORDINALITY
                   AS d(alias, description, token, dictionaries,
                        dictionary, lexemes, t),
                   unnest(d.lexemes) WITH ORDINALITY AS x(w, l)) words
$$;

CREATE FUNCTION chat.api_search(p_tenant text, p_user text, p_name text,
                                a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_query  tsquery;
    v_limit  integer := chat.limit_of(a);
    v_offset integer := 0;
    v_conv   bigint := (a->>'conversation_id')::bigint;
    v_items  text;
    v_count  integer;
BEGIN
    IF a->>'q' IS NULL THEN
        PERFORM chat.fail(400, '"q": is required');
    END IF;

    v_query := chat.search_query(a->>'q');
    IF v_query IS NULL THEN
        PERFORM chat.fail(400, '"q": must contain a word');
    END IF;

    IF a ? 'cursor' THEN
        IF a->>'cursor' !~ '^[0-9]{1,4}$' THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END IF;
        v_offset := (a->>'cursor')::integer;
    END IF;

    WITH hits AS (
        SELECT m, ts_rank(m.search, v_query) AS rank
          FROM chat.messages m
          JOIN chat.members mb ON mb.conversation_id = m.conversation_id
         WHERE mb.tenant_id = p_tenant AND mb.user_id = p_user
           AND m.search @@ v_query
           AND m.deleted_at IS NULL
           AND (v_conv IS NULL OR m.conversation_id = v_conv)
           AND (a->>'sender_id' IS NULL OR m.sender_id = a->>'sender_id')
           AND (a->>'type' IS NULL OR m.type = a->>'type')
           AND (a->>'from' IS NULL
                OR m.created_at >= (a->>'from')::timestamptz)
           AND (a->>'to' IS NULL OR m.created_at < (a->>'to')::timestamptz)
         ORDER BY rank DESC, m.created_at DESC, m.id DESC
         OFFSET v_offset LIMIT v_limit + 1
    ), numbered AS (
        SELECT m, row_number() OVER (ORDER BY rank DESC,
                                     (m).created_at DESC, (m).id DESC) AS n
          FROM hits
    )
    SELECT string_agg(chat.message_json(m, p_user)::text, ','
                          ORDER BY n)
               FILTER (WHERE n <= v_limit),
           count(*)
      INTO v_items, v_count
      FROM numbered;

    RETURN NEXT chat.answer(200, chat.page(v_items,
        CASE WHEN v_count > v_limit AND v_offset + v_limit <= 9999
             THEN (v_offset + v_limit)::text END));
END
$$;
