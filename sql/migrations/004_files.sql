-- Files as uploads store them: the bytes once per content (the storage
-- key is the SHA-256 of the bytes, so the same bytes uploaded twice are
-- stored once and share the key), what the bytes said they are, the size
-- of an image and whether it has a thumbnail.

ALTER TABLE chat.files
    ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN kind text NOT NULL DEFAULT 'file'
        CHECK (kind IN ('image', 'video', 'audio', 'file')),
    ADD COLUMN width integer CHECK (width > 0),
    ADD COLUMN height integer CHECK (height > 0),
    ADD COLUMN has_thumbnail boolean NOT NULL DEFAULT false;

ALTER TABLE chat.files DROP CONSTRAINT files_storage_key_key;

-- what may still be referenced, for the collection of unused bytes
CREATE INDEX files_storage_key ON chat.files (storage_key);

-- a user's storage, for the quota
CREATE INDEX files_uploader ON chat.files (tenant_id, uploader_id);

-- the media of a conversation, newest first
CREATE INDEX messages_with_files ON chat.messages (conversation_id, seq)
    WHERE has_files;

-- the File object says what kind of file it is and, of an image, its size
ALTER TYPE chat.file_out ADD ATTRIBUTE kind text,
                         ADD ATTRIBUTE width integer,
                         ADD ATTRIBUTE height integer;
