-- Accounts. Portable SQL: this file runs unchanged on SQLite and Postgres 15.
-- Ids are random URL-safe tokens made by the app (TEXT, no AUTOINCREMENT/SERIAL), times are
-- unix seconds (BIGINT). Usernames are stored lowercase, so UNIQUE is case-insensitive.
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,          -- argon2id PHC string from the host
    created_at    BIGINT NOT NULL
);
