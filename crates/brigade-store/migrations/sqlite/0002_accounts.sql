-- Accounts, login sessions and token signing keys (SQLite).

CREATE TABLE accounts (
    id             BLOB PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    shop_id        BLOB REFERENCES shops (id),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- A login. Tokens name their session, so revoking the row revokes the token on every replica.
CREATE TABLE sessions (
    id          BLOB PRIMARY KEY NOT NULL,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX sessions_by_account ON sessions (account_id);

-- The signing key used when none is configured, created by the first replica to start.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
