//! The Accounts API's token logic: operator logins (password or API key), refresh ids that are
//! reusable until their absolute expiry (the original's semantics, accounts-api.md A8), bearer
//! checks for the management plane, and login throttling.
//!
//! Refresh ids are 128 random bits shaped like a UUID (clients have only ever seen UUIDs) and
//! stored as keyed hashes. Passwords are checked with argon2id on the shared bounded pool; an
//! unknown username costs the same hashing work as a wrong password.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::crypto::{hex, new_secret, random_bytes, MasterKey};
use crate::ids::OperatorId;
use crate::jws::{self, AccountsClaims, SigningAlg, AUDIENCE, ISSUER};
use crate::keyring::KeyRing;
use crate::metrics::{Metrics, OPERATOR};
use crate::model::{AuditEvent, Operator, OperatorKind, OperatorSession, Role};
use crate::secret::Secret;
use crate::service::{PasswordPool, ServiceError, TokenService};
use crate::store::{StoreError, Stores};

/// The prefix of operator API keys.
pub const API_KEY_PREFIX: &str = "tsk_";

/// Login throttling (accounts-api.md A13).
#[derive(Debug, Clone)]
pub struct LockoutPolicy {
    /// Failures of one (account, address) pair within `window` that lock the pair.
    pub failures: usize,
    /// Seconds over which failures count.
    pub window: i64,
    /// Seconds a locked pair stays locked.
    pub lock: i64,
    /// Failures from one address, over all accounts, within `window` that block the address
    /// for `lock` seconds (stops password spraying across accounts).
    pub address_failures: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            failures: 5,
            window: 180,
            lock: 900,
            address_failures: 30,
        }
    }
}

/// Lifetimes and signing of Accounts tokens.
#[derive(Debug, Clone)]
pub struct AccountsPolicy {
    /// How access tokens are signed.
    pub alg: SigningAlg,
    /// Access-token lifetime (the original: 1 h).
    pub access_lifetime: i64,
    /// Refresh-id lifetime, absolute from issue (the original: 24 h).
    pub refresh_lifetime: i64,
    /// Clock skew tolerated when checking access tokens.
    pub leeway: i64,
    /// Login throttling.
    pub lockout: LockoutPolicy,
}

impl Default for AccountsPolicy {
    fn default() -> Self {
        AccountsPolicy {
            alg: SigningAlg::Hs256,
            access_lifetime: 3600,
            refresh_lifetime: 86_400,
            leeway: 5,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// What a successful login hands out.
#[derive(Debug)]
pub struct OperatorTokens {
    /// The compact JWS access token.
    pub access: Secret<String>,
    /// The refresh id (shown once; stored as a hash).
    pub refresh_id: Secret<String>,
    /// Who logged in.
    pub operator: Operator,
}

/// Why an Accounts request failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Bad, unknown, disabled or locked credentials: one answer for all of them.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The refresh id is unknown, expired or invalidated.
    #[error("refresh token not found")]
    RefreshNotFound,
    /// The bearer token is missing, invalid or expired, or its operator is gone or disabled.
    #[error("unauthorized")]
    Unauthorized,
    /// No active signing key.
    #[error("no active signing key")]
    NoKey,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ServiceError> for AccountsError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(s) => AccountsError::Store(s),
            other => AccountsError::Store(StoreError::Unavailable(other.to_string())),
        }
    }
}

/// Recent failures of one key (an account at an address, or an address).
#[derive(Debug, Default)]
struct Strikes {
    recent: VecDeque<i64>,
    locked_until: i64,
}

impl Strikes {
    fn locked(&self, now: i64) -> bool {
        now < self.locked_until
    }

    /// Records a failure; returns true if it locks.
    fn fail(&mut self, now: i64, limit: usize, window: i64, lock: i64) -> bool {
        while self.recent.front().is_some_and(|t| *t <= now - window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() >= limit {
            self.recent.clear();
            self.locked_until = now + lock;
            return true;
        }
        false
    }

    fn idle(&self, now: i64, window: i64) -> bool {
        !self.locked(now) && self.recent.back().is_none_or(|t| *t <= now - window)
    }
}

/// In-memory login throttling, per node, on the injected clock. A lock is per (account,
/// address), so an attacker at one address cannot lock the account out for everyone else.
#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    clock: Arc<dyn Clock>,
    pairs: Mutex<HashMap<(String, IpAddr), Strikes>>,
    addresses: Mutex<HashMap<IpAddr, Strikes>>,
}

impl Lockout {
    /// Throttling under `policy`.
    pub fn new(policy: LockoutPolicy, clock: Arc<dyn Clock>) -> Self {
        Lockout {
            policy,
            clock,
            pairs: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a login for `account` from `addr` must be refused without checking it.
    pub fn refused(&self, account: &str, addr: IpAddr) -> bool {
        let now = self.clock.now().0;
        let pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        let addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        pairs
            .get(&(account.to_string(), addr))
            .is_some_and(|s| s.locked(now))
            || addresses.get(&addr).is_some_and(|s| s.locked(now))
    }

    /// Counts a failed login.
    pub fn failed(&self, account: &str, addr: IpAddr) {
        let now = self.clock.now().0;
        let p = &self.policy;
        let locked = self
            .pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((account.to_string(), addr))
            .or_default()
            .fail(now, p.failures, p.window, p.lock);
        if locked {
            // The account is `user:<name>` or `key:<prefix of the key's keyed hash>`: never
            // the secret. Debug formatting escapes whatever a caller put in the name.
            tracing::warn!(%addr, account = ?account, lock_seconds = p.lock, "login locked for an account at this address");
        }
        let blocked = self
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr)
            .or_default()
            .fail(now, p.address_failures, p.window, p.lock);
        if blocked {
            tracing::warn!(%addr, "logins blocked for this address after failures across accounts");
        }
    }

    /// Clears an account's failures at an address after a successful login.
    pub fn succeeded(&self, account: &str, addr: IpAddr) {
        self.pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(account.to_string(), addr));
    }

    /// Drops entries with nothing left to remember.
    pub fn prune(&self) {
        let now = self.clock.now().0;
        let window = self.policy.window;
        self.pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| !s.idle(now, window));
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| !s.idle(now, window));
    }
}

/// A new refresh id: 128 random bits written like a UUID.
fn new_refresh_id() -> String {
    let b = random_bytes::<16>();
    let hex = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `id` has the shape of a refresh id (36 characters, hex digits and four hyphens).
pub fn is_refresh_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A new operator record, with an API key for a service (returned once, stored as a hash).
pub fn new_operator(
    master: &MasterKey,
    clock: &dyn Clock,
    username: &str,
    domain: Option<String>,
    kind: OperatorKind,
    role: Role,
    password_hash: Option<String>,
) -> (Operator, Option<Secret<String>>) {
    let api_key = (kind == OperatorKind::Service).then(|| new_secret(API_KEY_PREFIX));
    let op = Operator {
        id: OperatorId::random(),
        username: username.to_string(),
        domain,
        kind,
        role,
        password_hash,
        api_key_hash: api_key.as_ref().map(|k| master.credential_hash(k.expose())),
        disabled: false,
        created_at: clock.now(),
    };
    (op, api_key)
}

/// Checks a username: 1–256 printable characters without spaces. The limit counts characters
/// (code points), as the OpenAPI document's `maxLength` does; the stores' unique index is on
/// plain `TEXT`, which has no length of its own.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 256
        && name.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// The Accounts token service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct AccountsService {
    /// Its own work needs only the operators; the whole set is for [`AccountsService::admin`].
    stores: Stores,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    master: MasterKey,
    policy: AccountsPolicy,
    passwords: Arc<PasswordPool>,
    lockout: Lockout,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

impl AccountsService {
    /// Assembles the service beside the Fabric `service`, whose key ring, clock, master key,
    /// password pool, audit log and metrics it shares: logins and subscriber passwords together
    /// never take more than the pool's permits, and both write one audit log.
    pub fn beside(service: &TokenService, stores: Stores, policy: AccountsPolicy) -> Self {
        let clock = service.clock().clone();
        AccountsService {
            lockout: Lockout::new(policy.lockout.clone(), clock.clone()),
            stores,
            keys: service.keys().clone(),
            clock,
            master: service.master().clone(),
            policy,
            passwords: service.passwords().clone(),
            audit: service.audit().clone(),
            metrics: service.metrics().clone(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AccountsPolicy {
        &self.policy
    }

    /// The throttling state (pruned by the upkeep loop).
    pub fn lockout(&self) -> &Lockout {
        &self.lockout
    }

    /// The password pool.
    pub fn passwords(&self) -> &Arc<PasswordPool> {
        &self.passwords
    }

    /// Administration as `actor` over this node's stores (with their caches), master key and
    /// clock: the management API's handlers act through it and never reach a store.
    pub fn admin(&self, actor: crate::admin::Actor) -> crate::admin::Admin {
        crate::admin::Admin {
            stores: self.stores.clone(),
            master: self.master.clone(),
            clock: self.clock.clone(),
            actor,
        }
    }

    fn record(&self, action: &str, actor: String, subject: String) {
        self.audit.record(AuditEvent {
            at: self.clock.now(),
            project_id: None,
            action: action.into(),
            actor,
            subject,
            detail: Default::default(),
        });
    }

    /// Records a management action by `actor`.
    pub fn audit_management(&self, actor: &Operator, action: &str, subject: String) {
        self.record(action, format!("operator:{}", actor.id), subject);
    }

    /// `POST /v1/tokens` with username and password.
    pub async fn login_password(
        &self,
        username: &str,
        password: Secret<String>,
        addr: IpAddr,
    ) -> Result<OperatorTokens, AccountsError> {
        // The same key the store finds the operator by, so that failures for a look-alike
        // name (KELVIN SIGN for `K`) count against that name and never lock the real one.
        let account = format!("user:{}", crate::ids::identity_key(username));
        if self.lockout.refused(&account, addr) {
            return Err(self.login_failed());
        }
        let found = self
            .stores
            .operators
            .find_operator(username)
            .await?
            .filter(|o| o.kind == OperatorKind::User);
        let phc = found.as_ref().and_then(|o| o.password_hash.clone());
        let ok = self.passwords.verify(password.clone(), phc.clone()).await?;
        let op = match found {
            Some(op) if ok && !op.disabled => op,
            _ => {
                self.lockout.failed(&account, addr);
                return Err(self.login_failed());
            }
        };
        self.lockout.succeeded(&account, addr);
        if phc
            .as_deref()
            .is_some_and(crate::crypto::password::needs_rehash)
        {
            // Parameters were raised since this hash was made; the next login checks the new one.
            let hash = self.passwords.hash(password).await?;
            if let Err(e) = self
                .stores
                .operators
                .set_operator_password(op.id, hash)
                .await
            {
                tracing::warn!(error = %e, "could not store a rehashed password");
            }
        }
        self.issue(op).await
    }

    /// `POST /v1/tokens` with an API key.
    pub async fn login_api_key(
        &self,
        key: Secret<String>,
        addr: IpAddr,
    ) -> Result<OperatorTokens, AccountsError> {
        let hash = self.master.credential_hash(key.expose());
        let account = format!("key:{}", hex(&hash[..8]));
        if self.lockout.refused(&account, addr) {
            return Err(self.login_failed());
        }
        match self.stores.operators.find_operator_by_key(hash).await? {
            Some(op) if op.kind == OperatorKind::Service && !op.disabled => {
                self.lockout.succeeded(&account, addr);
                self.issue(op).await
            }
            _ => {
                self.lockout.failed(&account, addr);
                Err(self.login_failed())
            }
        }
    }

    fn login_failed(&self) -> AccountsError {
        self.metrics.login(false);
        AccountsError::InvalidCredentials
    }

    /// Stores a refresh id, then mints the access token: the response is sent only after the
    /// refresh id is committed.
    async fn issue(&self, op: Operator) -> Result<OperatorTokens, AccountsError> {
        let now = self.clock.now();
        let refresh_id = Secret::new(new_refresh_id());
        self.stores
            .operators
            .create_operator_session(OperatorSession {
                hash: self.master.credential_hash(refresh_id.expose()),
                operator_id: op.id,
                created_at: now,
                expires_at: now.plus(self.policy.refresh_lifetime),
            })
            .await?;
        let access = self.access_token(&op)?;
        self.metrics.login(true);
        self.metrics.token_issued(OPERATOR);
        self.record(
            "operator.login",
            format!("operator:{}", op.id),
            format!("operator:{}", op.id),
        );
        Ok(OperatorTokens {
            access,
            refresh_id,
            operator: op,
        })
    }

    fn access_token(&self, op: &Operator) -> Result<Secret<String>, AccountsError> {
        let now = self.clock.now().0;
        let claims = AccountsClaims {
            jti: crate::ids::random_uuid().to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: op.username.clone(),
            user: op.username.clone(),
            name: op.username.clone(),
            scope: op.role.scopes().iter().map(|s| s.to_string()).collect(),
            iat: now,
            nbf: now,
            exp: now + self.policy.access_lifetime,
        };
        jws::sign(&self.keys, self.policy.alg, &claims)
            .map(Secret::new)
            .map_err(|_| AccountsError::NoKey)
    }

    /// `PATCH /v1/tokens/access-token/refresh`: a new access token for a live refresh id. The
    /// id is not rotated.
    pub async fn refresh(&self, id: &str) -> Result<Secret<String>, AccountsError> {
        if !is_refresh_id(id) {
            return Err(AccountsError::RefreshNotFound);
        }
        let hash = self.master.credential_hash(&id.to_ascii_lowercase());
        let session = self
            .stores
            .operators
            .find_operator_session(hash)
            .await?
            .filter(|s| s.expires_at > self.clock.now())
            .ok_or(AccountsError::RefreshNotFound)?;
        let op = match self
            .stores
            .operators
            .get_operator(session.operator_id)
            .await
        {
            Ok(op) if !op.disabled => op,
            Ok(_) | Err(StoreError::NotFound) => return Err(AccountsError::RefreshNotFound),
            Err(e) => return Err(e.into()),
        };
        let access = self.access_token(&op)?;
        self.metrics.token_issued(OPERATOR);
        Ok(access)
    }

    /// `DELETE /v1/tokens/refresh-token`: forgets a refresh id (idempotent). Access tokens
    /// already minted from it stay valid until they expire (accounts-api.md A10).
    pub async fn invalidate(&self, id: &str) -> Result<(), AccountsError> {
        let hash = self.master.credential_hash(&id.to_ascii_lowercase());
        self.stores.operators.delete_operator_session(hash).await?;
        Ok(())
    }

    /// Checks a management bearer token and returns its operator as stored now: a deleted or
    /// disabled operator is refused, and the role is the current one, not the token's.
    pub async fn authenticate(&self, bearer: &str) -> Result<Operator, AccountsError> {
        let claims = jws::verify(
            &self.keys,
            self.policy.alg,
            bearer,
            self.clock.now(),
            self.policy.leeway,
        )
        .map_err(|_| AccountsError::Unauthorized)?;
        match self.stores.operators.find_operator(&claims.sub).await? {
            Some(op) if !op.disabled => Ok(op),
            _ => Err(AccountsError::Unauthorized),
        }
    }

    /// The public keys resource servers verify Accounts tokens with (none under HS256); the
    /// server publishes them as a JWKS.
    pub fn public_keys(&self) -> Vec<jws::PublicKey> {
        jws::public_keys(&self.keys, self.policy.alg)
    }

    /// Creates an operator (hashing its password on the pool). Returns it and, for a service,
    /// its API key (shown once).
    pub async fn create_operator(
        &self,
        actor: Option<&Operator>,
        username: &str,
        domain: Option<String>,
        kind: OperatorKind,
        role: Role,
        password: Option<Secret<String>>,
    ) -> Result<(Operator, Option<Secret<String>>), AccountsError> {
        let hash = match password {
            Some(pw) => Some(self.passwords.hash(pw).await?),
            None => None,
        };
        let (op, key) = new_operator(
            &self.master,
            self.clock.as_ref(),
            username,
            domain,
            kind,
            role,
            hash,
        );
        self.stores.operators.create_operator(op.clone()).await?;
        let actor = actor.map_or("admin".to_string(), |a| format!("operator:{}", a.id));
        self.record("operator.created", actor, format!("operator:{}", op.id));
        Ok((op, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, UnixTime};

    #[test]
    fn refresh_ids_are_uuid_shaped_and_random() {
        let a = new_refresh_id();
        assert!(is_refresh_id(&a), "{a}");
        assert_ne!(a, new_refresh_id());
        assert!(!is_refresh_id("not-an-id"));
        assert!(!is_refresh_id(&a.replace('-', "x")));
    }

    #[test]
    fn lockout_is_per_account_and_address_and_expires() {
        let clock = ManualClock::new(UnixTime(1_000));
        let l = Lockout::new(LockoutPolicy::default(), Arc::new(clock.clone()));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..4 {
            l.failed("user:x", a);
        }
        assert!(!l.refused("user:x", a));
        l.failed("user:x", a);
        assert!(l.refused("user:x", a));
        assert!(!l.refused("user:x", b));
        assert!(!l.refused("user:y", a));
        clock.advance(899);
        assert!(l.refused("user:x", a));
        clock.advance(1);
        assert!(!l.refused("user:x", a));
        // Failures spread beyond the window do not add up.
        for _ in 0..10 {
            l.failed("user:z", a);
            clock.advance(60);
        }
        assert!(!l.refused("user:z", a));
        l.prune();
    }

    #[test]
    fn spraying_across_accounts_blocks_the_address() {
        let clock = ManualClock::new(UnixTime(1_000));
        let l = Lockout::new(LockoutPolicy::default(), Arc::new(clock));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..30 {
            l.failed(&format!("user:{i}"), a);
        }
        assert!(l.refused("user:fresh", a));
        assert!(!l.refused("user:fresh", "10.0.0.2".parse().unwrap()));
    }
}
