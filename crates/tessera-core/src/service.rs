//! The token service: every Fabric grant, refresh and credential check, independent of HTTP.
//!
//! Handlers parse wire input into the request types here, call one method, and render the
//! result. Rules that do not depend on the wire (address limits, project scoping, rotation and
//! reuse detection) live here so every dialect and every backend gets them the same way.

use std::sync::Arc;

use uuid::Uuid;

use crate::audit::AuditLog;
use crate::clock::{Clock, UnixTime};
use crate::crypto::{password, MasterKey};
use crate::ids::{AddressId, FamilyId, ProjectId, ResourceId, TokenId};
use crate::keyring::KeyRing;
use crate::metrics::{Metrics, RefreshResult};
use crate::model::*;
use crate::secret::Secret;
use crate::store::{DirectoryStore, FamilyStore, StoreError, Stores};
use crate::token::{check_time, Claims, PrincipalKind, TokenClass, TokenError};

/// At most this many addresses in one restricted token.
pub const MAX_ALLOWED_ADDRESSES: usize = 10;

/// The scope that lets a browser holder refresh its own token.
pub const SCOPE_SAT_REFRESH: &str = "sat:refresh";

/// Lifetimes and windows. Every value is in seconds.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Default access-token lifetime (2 h).
    pub access_lifetime: i64,
    /// How much longer a refresh token lives than its access token (5 min).
    pub refresh_extra: i64,
    /// The furthest expiry a caller may ask for (24 h).
    pub max_lifetime: i64,
    /// Absolute lifetime of a session family, whatever the activity (30 days).
    pub family_lifetime: i64,
    /// Lifetime of guest tokens made from click-to-call widgets (1 h).
    pub embed_lifetime: i64,
    /// Lifetime of a `sat:refresh` token that is not bound to a fingerprint (60 s).
    pub unbound_refresh_scope_lifetime: i64,
    /// Window in which a just-spent refresh token is still honoured (honest concurrent
    /// retries); 0 disables it.
    pub refresh_grace: i64,
    /// Clock-skew tolerance for `exp` and `iat`.
    pub leeway: i64,
    /// The relay host to announce in the `ch` header, if any.
    pub relay_host: Option<String>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            access_lifetime: 2 * 3600,
            refresh_extra: 300,
            max_lifetime: 24 * 3600,
            family_lifetime: 30 * 24 * 3600,
            embed_lifetime: 3600,
            unbound_refresh_scope_lifetime: 60,
            refresh_grace: 5,
            leeway: 5,
            relay_host: None,
        }
    }
}

/// A domain rule a request broke. The server maps each to its dialect's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// More than [`MAX_ALLOWED_ADDRESSES`] addresses.
    TooManyAddresses,
    /// No addresses at all.
    NoAddresses,
    /// One or more addresses are not the project's.
    AddressesNotInProject,
    /// An invite address that is not a subscriber address the caller may invite to.
    InvalidInviteAddress,
    /// `application_id` names no application of the project.
    UnknownApplication,
    /// An access token was presented where a refresh token is due.
    NotARefreshToken,
    /// The refresh token has expired.
    TokenExpired,
    /// The token is not valid (tampered, revoked, spent, another project's, unknown key).
    TokenInvalid,
    /// An embed token without the `c2c_` prefix.
    EmbedTokenPrefix,
    /// A subscriber with this email already exists in the project.
    EmailTaken,
}

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Missing or wrong credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// The thing does not exist (in this project).
    #[error("not found")]
    NotFound,
    /// It exists but may not be used (a disabled widget).
    #[error("forbidden")]
    Forbidden,
    /// A domain rule was broken.
    #[error("rule broken: {0:?}")]
    Rule(Rule),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// No active key for a purpose: the node is not ready to issue tokens.
    #[error("no active key")]
    NoKey,
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(ref what) if what == "email" => {
                ServiceError::Rule(Rule::EmailTaken)
            }
            other => ServiceError::Store(other),
        }
    }
}

/// Shorthand for service results.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// An access token and, for refreshable grants, its refresh token.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The access token (SAT).
    pub access: Secret<String>,
    /// The refresh token, if the grant is refreshable.
    pub refresh: Option<Secret<String>>,
    /// The claims sealed into the access token.
    pub claims: Claims,
}

/// A subscriber token request (Fabric T1), already parsed.
#[derive(Debug, Clone, Default)]
pub struct SubscriberGrant {
    /// Upsert key.
    pub reference: String,
    /// Expiry; `None` for the default lifetime. Already range-checked.
    pub expire_at: Option<UnixTime>,
    /// Application the token is bound to.
    pub application_id: Option<ResourceId>,
    /// New password (non-empty), if any.
    pub password: Option<Secret<String>>,
    /// Profile fields to set.
    pub patch: SubscriberPatch,
    /// Requested scope.
    pub scope: Option<String>,
    /// Device fingerprint, if bound.
    pub fingerprint: Option<String>,
}

/// A password job: runs on a hashing thread and sends its own answer.
type PasswordJob = Box<dyn FnOnce() + Send>;

/// Runs argon2 on a fixed set of dedicated threads, one per core, at a lower scheduling
/// priority than the request threads, so that password work can never take the CPU that the
/// token hot path needs.
///
/// Why dedicated threads rather than `spawn_blocking`: argon2id at OWASP's parameters
/// allocates 19 MiB per hash. On Tokio's blocking pool each hash may land on another thread,
/// and the allocator keeps the freed 19 MiB in that thread's arena, so a login burst grew the
/// resident set by gigabytes. A fixed thread reuses its own arena: the pool costs about
/// `threads × 19 MiB` at most.
///
/// Why a lower priority (nice 10): under a login flood that saturates the CPU, token issuance
/// still gets about nine tenths of each contended core; when the CPU is otherwise idle,
/// hashing gets all of it, so logins alone still reach the argon2 floor.
pub struct PasswordPool {
    jobs: std::sync::mpsc::Sender<PasswordJob>,
    verified: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool").finish_non_exhaustive()
    }
}

/// The niceness of hashing threads (0 is the default; higher yields more).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const PASSWORD_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`PASSWORD_NICE`]. On Linux a thread id names the
/// thread alone for `setpriority`. Failing (a sandbox refusing) costs fairness, not
/// correctness.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), PASSWORD_NICE) {
            tracing::debug!(error = %e, "could not lower the hashing thread's priority");
        }
    }
}

impl PasswordPool {
    /// A pool of `parallel` hashing threads.
    pub fn new(parallel: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<PasswordJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..parallel.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job; a poisoned lock
                        // (a panicking job) leaves the receiver intact.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            // Every sender is gone: the pool was dropped.
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        PasswordPool {
            jobs: tx,
            verified: Default::default(),
        }
    }

    /// Runs `work` on a hashing thread and waits for its answer without blocking the caller's
    /// thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ServiceResult<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: PasswordJob = Box::new(move || {
            let _ = done.send(work());
        });
        let sent = self.jobs.send(job);
        let unavailable = || {
            ServiceError::Store(StoreError::Unavailable(
                "password hashing has stopped".into(),
            ))
        };
        sent.map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())
    }

    /// Checks a password off the async threads; with no stored hash it does the same work and
    /// answers `false`.
    pub async fn verify(&self, pw: Secret<String>, phc: Option<String>) -> ServiceResult<bool> {
        self.verified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run(move || match phc {
            Some(phc) => password::verify(pw.expose(), &phc),
            None => password::verify_nobody(pw.expose()),
        })
        .await
    }

    /// How many password checks (real or against no one) have run: lets tests see that an
    /// unknown user costs the same hashing work as a wrong password.
    pub fn verifications(&self) -> u64 {
        self.verified.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes a password off the async threads.
    pub async fn hash(&self, pw: Secret<String>) -> ServiceResult<String> {
        self.run(move || password::hash(pw.expose())).await
    }
}

/// The token service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TokenService {
    families: Arc<dyn FamilyStore>,
    directory: Arc<dyn DirectoryStore>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    master: MasterKey,
    policy: TokenPolicy,
    passwords: Arc<PasswordPool>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

impl TokenService {
    /// Assembles the service over the families and the directory of `stores`.
    pub fn new(
        stores: &Stores,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        master: MasterKey,
        policy: TokenPolicy,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        TokenService {
            families: stores.families.clone(),
            directory: stores.directory.clone(),
            keys,
            clock,
            master,
            policy,
            passwords: Arc::new(PasswordPool::new(cores)),
            audit: AuditLog::disabled(),
            metrics: Arc::default(),
        }
    }

    /// Counts this service's work in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Records a credential change (a password set or changed, an API token created or
    /// revoked). Never carries the credential itself.
    pub fn audit_credential(
        &self,
        project: ProjectId,
        actor: String,
        action: &str,
        subject: String,
    ) {
        self.audit.record(AuditEvent {
            at: self.clock.now(),
            project_id: Some(project),
            action: action.into(),
            actor,
            subject,
            detail: serde_json::Map::new(),
        });
    }

    /// Sends this service's audit events to `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Records an audit event about a family.
    fn audit_family(
        &self,
        action: &str,
        project: ProjectId,
        family: FamilyId,
        kind: PrincipalKind,
    ) {
        let mut detail = serde_json::Map::new();
        detail.insert("kind".into(), kind.as_str().into());
        self.audit.record(AuditEvent {
            at: self.clock.now(),
            project_id: Some(project),
            action: action.into(),
            actor: format!("project:{project}"),
            subject: format!("family:{family}"),
            detail,
        });
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The policy.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// The key ring the tokens are sealed with.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The master key (for hashing credentials at the edge).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The password pool.
    pub fn passwords(&self) -> &Arc<PasswordPool> {
        &self.passwords
    }

    /// Checks a project's Basic credentials.
    pub async fn authenticate_project(
        &self,
        project: ProjectId,
        secret: &str,
    ) -> ServiceResult<()> {
        let hash = self.master.credential_hash(secret);
        match self.directory.find_api_token(project, hash).await? {
            Some(t) if crate::crypto::ct_eq(&t.hash, &hash) => Ok(()),
            _ => Err(ServiceError::Unauthorized),
        }
    }

    /// Checks a Bearer access token: a valid SAT whose family is alive. Returns its claims.
    pub async fn authenticate_bearer(&self, token: &str) -> ServiceResult<Claims> {
        let claims = self
            .keys
            .open(TokenClass::Access, token)
            .map_err(|_| ServiceError::Unauthorized)?;
        let now = self.clock.now();
        check_time(&claims, now, self.policy.leeway).map_err(|_| ServiceError::Unauthorized)?;
        let fam = match self.families.get_family(claims.fam).await {
            Ok(f) => f,
            Err(StoreError::NotFound) => return Err(ServiceError::Unauthorized),
            Err(e) => return Err(e.into()),
        };
        if fam.revoked_at.is_some() || fam.expires_at <= now || fam.project_id != claims.pid {
            return Err(ServiceError::Unauthorized);
        }
        Ok(claims)
    }

    /// A time-ordered (v7) id for a guest subject, like family ids. Random (v4) ids would land
    /// on a random leaf of every index they are in, dirtying a page per grant that the commit
    /// must write; ordered ids append, so a batch of grants shares a few pages. The 74 random
    /// bits keep ids unguessable, and ids travel only inside encrypted tokens.
    fn ordered_uuid(&self) -> Uuid {
        FamilyId::ordered(self.clock.now_millis()).0
    }

    fn new_family(
        &self,
        project: ProjectId,
        kind: PrincipalKind,
        subject: Uuid,
        generation: i64,
        access_exp: UnixTime,
    ) -> Family {
        let now = self.clock.now();
        let expires_at = now.plus(self.policy.family_lifetime);
        // A refreshable grant's newest token is its refresh token, which outlives the access
        // token by `refresh_extra`.
        let last = if generation > 0 {
            access_exp.plus(self.policy.refresh_extra)
        } else {
            access_exp
        };
        Family {
            tokens_expire_at: last.min(expires_at),
            id: FamilyId::ordered(self.clock.now_millis()),
            project_id: project,
            kind,
            subject,
            generation,
            created_at: now,
            expires_at,
            rotated_at: None,
            revoked_at: None,
        }
    }

    /// Seals the access token for `claims` and, when `generation` is given, a refresh token
    /// for that generation living `refresh_extra` longer (both capped by the family's end).
    fn mint(
        &self,
        action: &str,
        claims: Claims,
        generation: Option<i64>,
        family_end: UnixTime,
    ) -> ServiceResult<IssuedTokens> {
        let ch = self.policy.relay_host.as_deref();
        let access = self
            .keys
            .seal(TokenClass::Access, &claims, ch)
            .map_err(|_| ServiceError::NoKey)?;
        let refresh = match generation {
            Some(g) => {
                let mut rc = claims.clone();
                rc.jti = TokenId::random();
                rc.gen = Some(g);
                rc.exp = claims
                    .exp
                    .saturating_add(self.policy.refresh_extra)
                    .min(family_end.0);
                Some(Secret::new(
                    self.keys
                        .seal(TokenClass::Refresh, &rc, ch)
                        .map_err(|_| ServiceError::NoKey)?,
                ))
            }
            None => None,
        };
        self.audit_family(action, claims.pid, claims.fam, claims.knd);
        if action == "token.issued" {
            self.metrics.token_issued(claims.knd.as_str());
        }
        Ok(IssuedTokens {
            access: Secret::new(access),
            refresh,
            claims,
        })
    }

    fn claims(
        &self,
        fam: &Family,
        exp: UnixTime,
        adr: Vec<AddressId>,
        app: Option<Uuid>,
        scp: Option<String>,
    ) -> Claims {
        Claims {
            sub: fam.subject,
            pid: fam.project_id,
            knd: fam.kind,
            fam: fam.id,
            jti: TokenId::random(),
            iat: self.clock.now().0,
            exp: exp.0.min(fam.expires_at.0),
            adr,
            app,
            gen: None,
            scp,
        }
    }

    /// Fabric T1: upserts the subscriber by reference and issues its tokens.
    pub async fn grant_subscriber(
        &self,
        project: ProjectId,
        req: SubscriberGrant,
        create: NewResource,
    ) -> ServiceResult<(ResourceId, IssuedTokens)> {
        let now = self.clock.now();
        if let Some(app) = req.application_id {
            match self.directory.get_resource(project, app).await {
                Ok(r) if r.kind == ResourceKind::App => {}
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(ServiceError::Rule(Rule::UnknownApplication))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let password_hash = match req.password {
            Some(pw) => Some(self.passwords.hash(pw).await?),
            None => None,
        };
        let mut exp = req
            .expire_at
            .unwrap_or(now.plus(self.policy.access_lifetime));
        if req.scope.as_deref() == Some(SCOPE_SAT_REFRESH) && req.fingerprint.is_none() {
            exp = exp.min(now.plus(self.policy.unbound_refresh_scope_lifetime));
        }
        let mut fam = self.new_family(project, PrincipalKind::Subscriber, Uuid::nil(), 1, exp);
        let upsert = SubscriberUpsert {
            reference: req.reference,
            patch: req.patch,
            password_hash,
            create,
        };
        let password_set = upsert.password_hash.is_some();
        let sid = self
            .families
            .grant_subscriber(GrantWrite {
                project,
                upsert,
                family: fam.clone(),
                at: now,
            })
            .await?;
        if password_set {
            self.audit_credential(
                project,
                format!("project:{project}"),
                "subscriber.password_set",
                format!("subscriber:{sid}"),
            );
        }
        fam.subject = sid.0;
        let claims = self.claims(
            &fam,
            exp,
            Vec::new(),
            req.application_id.map(|a| a.0),
            req.scope,
        );
        Ok((
            sid,
            self.mint("token.issued", claims, Some(1), fam.expires_at)?,
        ))
    }

    /// Fabric T3: a guest token for up to ten of the project's addresses.
    pub async fn grant_guest(
        &self,
        project: ProjectId,
        addresses: Vec<AddressId>,
        expire_at: Option<UnixTime>,
    ) -> ServiceResult<IssuedTokens> {
        let addresses = self.check_addresses(project, addresses).await?;
        let exp = expire_at.unwrap_or(self.clock.now().plus(self.policy.access_lifetime));
        let fam = self.new_family(project, PrincipalKind::Guest, self.ordered_uuid(), 1, exp);
        self.families.create_family(fam.clone()).await?;
        let claims = self.claims(&fam, exp, addresses, None, None);
        self.mint("token.issued", claims, Some(1), fam.expires_at)
    }

    /// Deduplicates and checks a restricted token's addresses: 1 to 10, all the project's.
    async fn check_addresses(
        &self,
        project: ProjectId,
        requested: Vec<AddressId>,
    ) -> ServiceResult<Vec<AddressId>> {
        // At most ten distinct ids survive, so a linear search of those found so far is
        // cheaper than hashing every id (a SipHash set cost ~3k instructions per guest grant)
        // and stays bounded however long the request's list is.
        let mut ids = Vec::with_capacity(requested.len().min(MAX_ALLOWED_ADDRESSES));
        for id in requested {
            if !ids.contains(&id) {
                if ids.len() == MAX_ALLOWED_ADDRESSES {
                    return Err(ServiceError::Rule(Rule::TooManyAddresses));
                }
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Err(ServiceError::Rule(Rule::NoAddresses));
        }
        let found = self.directory.existing_addresses(project, &ids).await?;
        if found.len() != ids.len() {
            return Err(ServiceError::Rule(Rule::AddressesNotInProject));
        }
        Ok(ids)
    }

    /// Fabric T4: an invite to one subscriber address. With `inviter` (Bearer subscriber
    /// scope) only the inviter's own address qualifies.
    pub async fn grant_invite(
        &self,
        project: ProjectId,
        address: AddressId,
        expires_at: Option<UnixTime>,
        inviter: Option<ResourceId>,
    ) -> ServiceResult<IssuedTokens> {
        let owner = match self.directory.address_owner(project, address).await {
            Ok(a) => a,
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Rule(Rule::InvalidInviteAddress))
            }
            Err(e) => return Err(e.into()),
        };
        if owner.kind != ResourceKind::Subscriber || inviter.is_some_and(|s| s != owner.resource_id)
        {
            return Err(ServiceError::Rule(Rule::InvalidInviteAddress));
        }
        let exp = expires_at.unwrap_or(self.clock.now().plus(self.policy.access_lifetime));
        let fam = self.new_family(project, PrincipalKind::Invite, self.ordered_uuid(), 0, exp);
        self.families.create_family(fam.clone()).await?;
        let claims = self.claims(&fam, exp, vec![address], None, None);
        self.mint("token.issued", claims, None, fam.expires_at)
    }

    /// Fabric T5: exchanges a public `c2c_` widget token for a short-lived guest token.
    pub async fn grant_embed(&self, c2c: &str) -> ServiceResult<IssuedTokens> {
        let Some(rest) = c2c.strip_prefix("c2c_") else {
            return Err(ServiceError::Rule(Rule::EmbedTokenPrefix));
        };
        if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::NotFound);
        }
        let hash = self.master.credential_hash(&c2c.to_ascii_lowercase());
        let embed = self
            .directory
            .find_embed(hash)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !embed.enabled {
            return Err(ServiceError::Forbidden);
        }
        let exp = self.clock.now().plus(self.policy.embed_lifetime);
        let fam = self.new_family(
            embed.project_id,
            PrincipalKind::Embed,
            self.ordered_uuid(),
            0,
            exp,
        );
        self.families.create_family(fam.clone()).await?;
        let claims = self.claims(&fam, exp, embed.addresses, None, None);
        self.mint("token.issued", claims, None, fam.expires_at)
    }

    /// Fabric T2: rotates a refresh token. The family's generation advances in one conditional
    /// update; presenting a spent generation outside the grace window revokes the family.
    pub async fn refresh(&self, project: ProjectId, token: &str) -> ServiceResult<IssuedTokens> {
        let result = self.rotate(project, token).await;
        match &result {
            Ok((_, outcome)) => self.metrics.refresh(*outcome),
            // Rule failures (rejections and reuse) were counted where they were decided.
            Err(ServiceError::Rule(_)) => {}
            Err(_) => self.metrics.refresh(RefreshResult::Rejected),
        }
        result.map(|(tokens, _)| tokens)
    }

    async fn rotate(
        &self,
        project: ProjectId,
        token: &str,
    ) -> ServiceResult<(IssuedTokens, RefreshResult)> {
        let reject = |rule| {
            self.metrics.refresh(RefreshResult::Rejected);
            Err(ServiceError::Rule(rule))
        };
        let claims = match self.keys.open(TokenClass::Refresh, token) {
            Ok(c) => c,
            Err(TokenError::WrongType) => return reject(Rule::NotARefreshToken),
            Err(_) => return reject(Rule::TokenInvalid),
        };
        let now = self.clock.now();
        match check_time(&claims, now, self.policy.leeway) {
            Ok(()) => {}
            Err(TokenError::Expired) => return reject(Rule::TokenExpired),
            Err(_) => return reject(Rule::TokenInvalid),
        }
        // A refresh token is bound to the project that got it: another project's credentials
        // see "invalid", exactly as for a token that never existed.
        if claims.pid != project {
            return reject(Rule::TokenInvalid);
        }
        let generation = claims.gen.unwrap_or(-1);
        let exp = now.plus(self.policy.access_lifetime);
        let tokens_expire_at = exp.plus(self.policy.refresh_extra);
        let (fam, outcome) = match self
            .families
            .rotate_family(Rotation {
                project,
                id: claims.fam,
                generation,
                at: now,
                tokens_expire_at,
            })
            .await?
        {
            RotateOutcome::Rotated(f) => (f, RefreshResult::Rotated),
            RotateOutcome::Stale(f) => {
                let in_grace = self.policy.refresh_grace > 0
                    && generation == f.generation - 1
                    && f.rotated_at
                        .is_some_and(|t| now.0 <= t.0 + self.policy.refresh_grace);
                if !in_grace {
                    tracing::warn!(family = %f.id, project = %project, "refresh token reuse detected; family revoked");
                    self.families.revoke_family(f.id, now).await?;
                    self.audit_family("refresh.reuse_detected", project, f.id, f.kind);
                    self.metrics.refresh(RefreshResult::ReuseDetected);
                    return Err(ServiceError::Rule(Rule::TokenInvalid));
                }
                // An honest concurrent retry: answer with the current generation instead of
                // advancing, so exactly one chain survives.
                (f, RefreshResult::Grace)
            }
            RotateOutcome::Dead | RotateOutcome::NotFound => return reject(Rule::TokenInvalid),
        };
        let new = self.claims(&fam, exp, claims.adr, claims.app, claims.scp);
        let tokens = self.mint("token.refreshed", new, Some(fam.generation), fam.expires_at)?;
        Ok((tokens, outcome))
    }

    /// RFC 7662 introspection for `project`: the claims and family of a live access token of
    /// that project, or `None` for anything else (expired, revoked, another project's, a refresh
    /// token, garbage). Reads only; writes nothing.
    pub async fn introspect(
        &self,
        project: ProjectId,
        token: &str,
    ) -> ServiceResult<Option<Claims>> {
        let result = self.check_access(project, token).await;
        if let Ok(found) = &result {
            self.metrics.introspection(found.is_some());
        }
        result
    }

    async fn check_access(&self, project: ProjectId, token: &str) -> ServiceResult<Option<Claims>> {
        let Ok(claims) = self.keys.open(TokenClass::Access, token) else {
            return Ok(None);
        };
        let now = self.clock.now();
        if claims.pid != project || check_time(&claims, now, self.policy.leeway).is_err() {
            return Ok(None);
        }
        match self.families.get_family(claims.fam).await {
            Ok(f) if f.revoked_at.is_none() && f.expires_at > now && f.project_id == project => {
                Ok(Some(claims))
            }
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// RFC 7009 revocation: an access or refresh token of `project` revokes its family.
    /// Returns the revoked family, if any; unknown or foreign tokens are not an error.
    pub async fn revoke(&self, project: ProjectId, token: &str) -> ServiceResult<Option<FamilyId>> {
        let claims = match self.keys.open(TokenClass::Access, token) {
            Ok(c) => c,
            Err(_) => match self.keys.open(TokenClass::Refresh, token) {
                Ok(c) => c,
                Err(_) => return Ok(None),
            },
        };
        if claims.pid != project {
            return Ok(None);
        }
        self.families
            .revoke_family(claims.fam, self.clock.now())
            .await?;
        self.audit_family("family.revoked", project, claims.fam, claims.knd);
        Ok(Some(claims.fam))
    }
}
