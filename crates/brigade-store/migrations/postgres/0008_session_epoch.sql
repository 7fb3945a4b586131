-- A counter that moves whenever a live session may have changed: a session revoked or deleted,
-- an account's role, shop, e-mail or password changed or the account deleted. Each replica
-- keeps sessions in memory and reads this one row at most every `auth.session_cache
-- .max_staleness_ms`; when it moved, the replica drops what it holds. Triggers bump it in the
-- same transaction as the change, so no code path that revokes can forget to.
-- New sessions (log-ins) do not move it: a cache never holds a session it has not read.
-- Statement-level triggers: a statement touching many rows moves it once.

CREATE TABLE session_epoch (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO session_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION bump_session_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE session_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER session_epoch_sessions AFTER UPDATE OR DELETE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_session_epoch();

CREATE TRIGGER session_epoch_accounts AFTER UPDATE OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_session_epoch();
