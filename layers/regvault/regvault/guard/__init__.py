"""Protected tags: a tag matching ``ProtectedTags`` keeps the digest it points at; an overwrite or a
delete of its ``current/link`` is put back by the restore core as soon as S3's event arrives."""
