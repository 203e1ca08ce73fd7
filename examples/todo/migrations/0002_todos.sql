-- Todos, one owner each. `done` is INTEGER 0/1: SQLite has no boolean type, and the same
-- file must run on Postgres.
CREATE TABLE todos (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- The list: one user's todos, newest first.
CREATE INDEX todos_user_created ON todos (user_id, created_at);
