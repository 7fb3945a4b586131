-- A counter that moves whenever a live session may have changed: a session revoked or deleted,
-- an account's role, shop, e-mail or password changed or the account deleted. Each replica
-- keeps sessions in memory and reads this one row at most every `auth.session_cache
-- .max_staleness_ms`; when it moved, the replica drops what it holds. Triggers bump it in the
-- same transaction as the change, so no code path that revokes can forget to.
-- New sessions (log-ins) do not move it: a cache never holds a session it has not read.

CREATE TABLE session_epoch (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO session_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER session_epoch_session_updated AFTER UPDATE ON sessions
BEGIN
    UPDATE session_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER session_epoch_session_deleted AFTER DELETE ON sessions
BEGIN
    UPDATE session_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER session_epoch_account_updated AFTER UPDATE ON accounts
BEGIN
    UPDATE session_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER session_epoch_account_deleted AFTER DELETE ON accounts
BEGIN
    UPDATE session_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
