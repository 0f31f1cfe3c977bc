-- The purge finds dead families by tokens_expire_at alone, which stores now keep no later
-- than expires_at (no token of a family works after that). Rows written before are brought
-- in line once; families(expires_at) then serves no query, and every family insert paid
-- for it.
UPDATE families SET tokens_expire_at = expires_at WHERE tokens_expire_at > expires_at;
DROP INDEX IF EXISTS families_expiry;
