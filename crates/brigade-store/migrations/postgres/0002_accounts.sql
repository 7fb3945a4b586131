-- Accounts, login sessions and token signing keys (PostgreSQL).

CREATE TABLE accounts (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    shop_id        UUID REFERENCES shops (id),
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- A login. Tokens name their session, so revoking the row revokes the token on every replica.
CREATE TABLE sessions (
    id          UUID PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX sessions_by_account ON sessions (account_id);

-- The signing key used when none is configured, created by the first replica to start.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
