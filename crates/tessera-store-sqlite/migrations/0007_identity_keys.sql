-- Tessera schema v7: identity keys compare ASCII case-insensitively and otherwise byte for
-- byte (tessera_core::ids::identity_key). Before, they were Rust's Unicode to_lowercase(),
-- which made "\u212Aate@x" (KELVIN SIGN) the key "kate@x" of another subscriber.
--
-- SQLite's built-in lower() folds only ASCII letters (this build has no ICU extension), so it
-- is exactly identity_key. Email keys and operators' username keys are recomputed from the
-- stored email and username.
--
-- The reference itself was never stored, only its key, and Unicode lowercasing cannot be
-- undone. A reference key equal to the old email key was (in every case but a reference that
-- differs from its email in non-ASCII case only) made from the email, so it is recomputed
-- from the email too; then anything it matches would match the email key anyway. Other
-- reference keys are kept: a key made from a reference with non-ASCII capitals (say
-- "ÉMILE") is no longer found by that reference, which then makes a new subscriber (or is
-- refused as a taken email) instead of reaching the old one.
--
-- No two rows can collide, neither after the update nor halfway through it (the unique
-- indexes are checked row by row): keys equal under ASCII folding were equal under Unicode
-- lowercasing, and a key the update changes is not a fixed point of Unicode lowercasing, as
-- every old key is, so it cannot meet a key not yet updated or kept (proved for the tricky
-- characters and every single character by the tests of identity_key).
UPDATE subscribers
   SET reference_key = CASE WHEN reference_key = email_key THEN lower(email)
                            ELSE reference_key END,
       email_key = lower(email)
 WHERE email_key <> lower(email);
UPDATE operators SET username_key = lower(username) WHERE username_key <> lower(username);
