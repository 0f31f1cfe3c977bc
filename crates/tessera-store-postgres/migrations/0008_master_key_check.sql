-- What recognises the master key (issue 18): a keyed hash of a fixed label under a sub-key of
-- the master key (`MasterKey::check_value`), in one row. Every command compares it before it
-- writes anything under its key, so a wrong key is refused instead of wrapping keys or hashing
-- credentials that the right key can never open. Databases migrated from an earlier version
-- have no row until the first command whose key unwraps every stored key records it.
-- `recorded_at` also dates the switch to separate JWS subkeys (see jws.rs).
CREATE TABLE master_key_check (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    value       BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL
);
