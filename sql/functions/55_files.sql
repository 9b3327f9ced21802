-- ngx_chat: files.  The module streams an upload to a temporary file,
-- hashes it and reads what the bytes are as they come, makes a thumbnail
-- of an image, and then asks here for the row; once it is written, the
-- bytes move into the store under their hash (src/ngx_chat_upload.c).
-- Downloads are checked here and sent by nginx itself.

-- POST files, once the bytes are in: the uploader's row, within the
-- quota (args.quota, bytes, when the module has one)
CREATE FUNCTION chat.api_file_create(p_tenant text, p_user text,
                                     p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
DECLARE
    f      chat.files;
    v_used bigint;
BEGIN
    PERFORM chat.touch_actor(p_tenant, p_user, p_name, a);

    IF a ? 'quota' THEN
        -- the uploader's uploads wait for each other here, not for others
        PERFORM pg_advisory_xact_lock(hashtext(p_tenant || E'\n' || p_user));

        SELECT coalesce(sum(size), 0) INTO v_used FROM chat.files
         WHERE tenant_id = p_tenant AND uploader_id = p_user;

        IF v_used + (a->>'size')::bigint > (a->>'quota')::bigint THEN
            RAISE EXCEPTION USING ERRCODE = 'CQ413',
                MESSAGE = 'the upload would pass your storage quota of '
                          || (a->>'quota') || ' bytes (' || v_used
                          || ' used)';
        END IF;
    END IF;

    INSERT INTO chat.files (tenant_id, uploader_id, name, size, content_type,
                            storage_key, sha256, kind, width, height,
                            has_thumbnail)
    VALUES (p_tenant, p_user, a->>'name', (a->>'size')::bigint,
            a->>'content_type', a->>'sha256', a->>'sha256',
            coalesce(a->>'kind', 'file'), (a->>'width')::integer,
            (a->>'height')::integer,
            coalesce((a->>'has_thumbnail')::boolean, false))
    RETURNING * INTO f;

    RETURN NEXT chat.answer(201, chat.file_json(f)::text);
END
$$;

-- The module could not store the bytes of a row it just had made: the
-- row goes (it was never attached to anything).
CREATE FUNCTION chat.api_file_discard(p_tenant text, p_user text,
                                      p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chat.files f
     WHERE f.id = (a->>'file_id')::bigint AND f.tenant_id = p_tenant
       AND f.uploader_id = p_user
       AND NOT EXISTS (SELECT 1 FROM chat.message_files mf
                        WHERE mf.file_id = f.id);

    RETURN NEXT chat.answer(204, NULL);
END
$$;

-- GET files/{id} and files/{id}/thumbnail: what the module needs to have
-- nginx send the bytes.  The uploader may see the file; and a member of a
-- conversation where a message (not deleted) carries it.  Removed from
-- every such conversation, the user sees it no more: 404, as for a file
-- that does not exist, of this tenant or another.
CREATE FUNCTION chat.api_file_get(p_tenant text, p_user text, p_name text,
                                  a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    f chat.files;
BEGIN
    -- one statement, planned once: a function of its own would be
    -- planned again in each transaction (docs/benchmarks.md, Files)
    SELECT * INTO f FROM chat.files x
     WHERE x.id = (a->>'file_id')::bigint AND x.tenant_id = p_tenant
       AND (x.uploader_id = p_user
            OR EXISTS (SELECT 1
                         FROM chat.message_files mf
                         JOIN chat.messages m ON m.id = mf.message_id
                         JOIN chat.members y
                           ON y.conversation_id = m.conversation_id
                          AND y.user_id = p_user
                        WHERE mf.file_id = x.id AND m.deleted_at IS NULL));

    IF NOT FOUND
       OR (coalesce((a->>'thumbnail')::boolean, false)
           AND NOT f.has_thumbnail)
    THEN
        PERFORM chat.fail(404, 'file not found');
    END IF;

    RETURN NEXT chat.answer(200, json_build_object(
        'storage_key', f.storage_key, 'name', f.name,
        'content_type', f.content_type, 'kind', f.kind,
        'sha256', f.sha256, 'size', f.size)::text);
END
$$;

-- GET conversations/{id}/files?type=: the files shared in a conversation,
-- newest first, by (seq, position) keyset
CREATE FUNCTION chat.api_conversation_files(p_tenant text, p_user text,
                                            p_name text, a jsonb)
RETURNS SETOF chat.reply LANGUAGE plpgsql STABLE AS $$
DECLARE
    e        record;
    v_limit  integer := chat.limit_of(a);
    v_kind   text := a->>'type';
    v_seq    bigint := 9007199254740992;
    v_pos    integer := 0;
    v_cursor text[];
    v_items  text;
    v_count  integer;
    v_next   text;
BEGIN
    e := chat.enter(p_tenant, p_user, (a->>'conversation_id')::bigint,
                    false);

    IF a ? 'cursor' THEN
        v_cursor := regexp_match(a->>'cursor', '^([0-9]{1,16})\.([0-9]{1,2})$');
        IF v_cursor IS NULL THEN
            PERFORM chat.fail(400, '"cursor": is not a cursor of this list');
        END IF;
        v_seq := v_cursor[1]::bigint;
        v_pos := v_cursor[2]::integer;
    END IF;

    WITH page AS (
        SELECT m.id AS message_id, m.sender_id, m.created_at, m.seq,
               mf.position, f,
               row_number() OVER (ORDER BY m.seq DESC, mf.position) AS n
          FROM chat.messages m
          JOIN chat.message_files mf ON mf.message_id = m.id
          JOIN chat.files f ON f.id = mf.file_id
         WHERE m.conversation_id = (e.c).id AND m.has_files
           AND m.deleted_at IS NULL
           AND (v_kind IS NULL OR f.kind = v_kind)
           AND (m.seq < v_seq OR (m.seq = v_seq AND mf.position > v_pos))
         ORDER BY m.seq DESC, mf.position
         LIMIT v_limit + 1
    )
    SELECT string_agg(json_build_object(
               'file', chat.file_json(p.f), 'message_id', p.message_id,
               'sender_id', p.sender_id,
               'created_at', chat.ts(p.created_at))::text, ','
               ORDER BY p.n) FILTER (WHERE p.n <= v_limit),
           count(*),
           max(CASE WHEN p.n = v_limit THEN p.seq || '.' || p.position END)
      INTO v_items, v_count, v_next
      FROM page p;

    IF v_count <= v_limit THEN
        v_next := NULL;
    END IF;

    RETURN NEXT chat.answer(200, chat.page(v_items, v_next));
END
$$;

-- Files nobody attached within p_age are removed, at most p_batch a call;
-- returns how many.  Their bytes are the store's to collect: what no row
-- names any more (scripts/files-gc).
CREATE FUNCTION chat.files_gc(p_age interval, p_batch integer)
RETURNS integer LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM chat.files f
         WHERE f.id IN (SELECT x.id FROM chat.files x
                         WHERE x.created_at < now() - p_age
                           AND NOT EXISTS (SELECT 1 FROM chat.message_files
                                            mf WHERE mf.file_id = x.id)
                         ORDER BY x.id
                         LIMIT p_batch)
        RETURNING 1
    )
    SELECT count(*)::integer FROM gone
$$;
