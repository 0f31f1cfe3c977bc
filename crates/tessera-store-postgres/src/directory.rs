//! [`DirectoryStore`] on PostgreSQL: projects, API tokens, resources, addresses and embeds.

use super::*;

#[async_trait]
impl DirectoryStore for PgStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        let _t = self.time("create_project");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            st.execute(
                &tx,
                "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)",
                &[&project.id.0, &project.name, &project.created_at.0],
            )
            .await?;
            insert_api_token(&tx, st, &token).await?;
        });
        db.finish(r)
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.fetch_one(
            "get_project",
            concat!("SELECT ", project_cols!(), " FROM projects WHERE id = $1"),
            &[&id.0],
            project_row,
        )
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.fetch_all(
            "list_projects",
            concat!(
                "SELECT ",
                project_cols!(),
                " FROM projects ORDER BY created_at, id"
            ),
            &[],
            project_row,
        )
        .await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        let _t = self.time("delete_project");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            // Families and subscribers carry the project id without a foreign key (they are
            // on the hot path); resources, addresses, tokens and embeds cascade. Only
            // subscriber families are indexed by project, so this scans families: deleting a
            // project is rare, an index entry per grant is not.
            st.execute(&tx, "DELETE FROM families WHERE project_id = $1", &[&id.0])
                .await?;
            st.execute(&tx, "DELETE FROM resources WHERE project_id = $1", &[&id.0])
                .await?;
            let n = st
                .execute(&tx, "DELETE FROM projects WHERE id = $1", &[&id.0])
                .await?;
            found(n)?;
        });
        db.finish(r)
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        let _t = self.time("create_api_token");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            insert_api_token(&tx, st, &token).await?;
        });
        db.finish(r)
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.fetch_all(
            "list_api_tokens",
            concat!(
                "SELECT ",
                api_token_cols!(),
                " FROM api_tokens WHERE project_id = $1 ORDER BY created_at, id"
            ),
            &[&project.0],
            api_token_row,
        )
        .await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        let n = self
            .execute(
                "revoke_api_token",
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id.0, &at.0],
            )
            .await?;
        found(n)
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        self.fetch_maybe(
            "find_api_token",
            concat!(
                "SELECT ",
                api_token_cols!(),
                " FROM api_tokens WHERE hash = $1 AND project_id = $2 AND revoked_at IS NULL"
            ),
            &[&&hash[..], &project.0],
            api_token_row,
        )
        .await
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        let _t = self.time("create_resource");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            insert_resource(&tx, st, &new, None, None).await?;
        });
        db.finish(r)
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.fetch_one(
            "get_resource",
            READ_RESOURCE,
            &[&id.0, &project.0],
            resource_row,
        )
        .await
    }

    async fn list_resources(&self, listing: ResourceListing) -> StoreResult<PageOf<Resource>> {
        let items = self
            .fetch_all(
                "list_resources",
                concat!(
                    "SELECT ",
                    resource_cols!(),
                    " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                     WHERE r.project_id = $1 AND ($2::text IS NULL OR r.kind = $2)
                       AND ($3::uuid IS NULL OR r.id > $3)
                     ORDER BY r.id LIMIT $4"
                ),
                &[
                    &listing.project.0,
                    &listing.kind.map(ResourceKind::as_str),
                    &listing.page.after,
                    &(listing.page.size as i64 + 1),
                ],
                resource_row,
            )
            .await?;
        Ok(page_of(items, listing.page.size))
    }

    async fn update_subscriber(&self, update: SubscriberUpdate) -> StoreResult<Resource> {
        let _t = self.time("update_subscriber");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let n = update_subscriber_row(
                &tx,
                st,
                update.project,
                update.id,
                &update.patch,
                update.password_hash.as_deref(),
                update.at,
            )
            .await?;
            found(n)?;
            // Changing the password revokes the subscriber's sessions (security.md).
            if update.password_hash.is_some() {
                revoke_subject(&tx, st, update.project, update.id, update.at).await?;
            }
            let row = st
                .query_opt(&tx, READ_RESOURCE, &[&update.id.0, &update.project.0])
                .await?;
            one(row, resource_row)?
        });
        db.finish(r)
    }

    async fn update_room(&self, update: RoomUpdate) -> StoreResult<Resource> {
        let _t = self.time("update_room");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            // The row stays locked until commit, so concurrent merges into `data` queue up
            // instead of overwriting each other.
            let row = st
                .query_opt(
                    &tx,
                    concat!(
                        "SELECT ",
                        resource_cols!(),
                        " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                         WHERE r.id = $1 AND r.project_id = $2 FOR UPDATE OF r"
                    ),
                    &[&update.id.0, &update.project.0],
                )
                .await?;
            let mut r = one(row, resource_row)?;
            if r.kind != update.kind {
                return Err(Fail::Store(StoreError::NotFound));
            }
            if let Some(n) = &update.patch.name {
                r.name.clone_from(n);
            }
            if let Some(d) = &update.patch.display_name {
                r.display_name.clone_from(d);
            }
            r.data.extend(update.patch.data.clone());
            st.execute(
                &tx,
                "UPDATE resources SET name = $2, display_name = $3, data = $4, updated_at = $5
                 WHERE id = $1",
                &[
                    &update.id.0,
                    &r.name,
                    &r.display_name,
                    &json(&r.data),
                    &update.at.0,
                ],
            )
            .await?;
            st.execute(
                &tx,
                "UPDATE addresses SET name = $2, display_name = $3 WHERE resource_id = $1",
                &[&update.id.0, &r.name, &r.display_name],
            )
            .await?;
            r.updated_at = update.at;
            r
        });
        db.finish(r)
    }

    async fn delete_resource(&self, deletion: ResourceDeletion) -> StoreResult<()> {
        let _t = self.time("delete_resource");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let n = st
                .execute(
                    &tx,
                    "DELETE FROM resources WHERE id = $1 AND project_id = $2 AND kind = $3",
                    &[&deletion.id.0, &deletion.project.0, &deletion.kind.as_str()],
                )
                .await?;
            found(n)?;
            if deletion.kind == ResourceKind::Subscriber {
                revoke_subject(&tx, st, deletion.project, deletion.id, deletion.at).await?;
            }
        });
        db.finish(r)
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.fetch_one(
            "get_address",
            concat!(
                "SELECT ",
                address_cols!(),
                " FROM addresses WHERE id = $1 AND project_id = $2"
            ),
            &[&id.0, &project.0],
            address_row,
        )
        .await
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        q: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        let items = self
            .fetch_all(
                "list_addresses",
                concat!(
                    "SELECT ",
                    address_cols!(),
                    " FROM addresses
                     WHERE project_id = $1
                       AND ($2::text IS NULL OR kind = $2)
                       AND ($3::text IS NULL OR display_name = $3)
                       AND ($4::uuid IS NULL OR resource_id = $4)
                       AND ($5::uuid IS NULL OR kind <> 'subscriber' OR resource_id = $5)
                       AND ($6::uuid IS NULL OR id > $6)
                     ORDER BY id LIMIT $7"
                ),
                &[
                    &project.0,
                    &q.kind.map(ResourceKind::as_str),
                    &q.display_name,
                    &q.resource_id.map(|r| r.0),
                    &q.visible_to.map(|r| r.0),
                    &page.after,
                    &(page.size as i64 + 1),
                ],
                address_row,
            )
            .await?;
        Ok(page_of(items, page.size))
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let ids: Vec<Uuid> = ids.iter().map(|a| a.0).collect();
        // In the order asked, once per mention (as the SQLite store answers).
        self.fetch_all(
            "existing_addresses",
            "SELECT addresses.id FROM unnest($1::uuid[]) WITH ORDINALITY AS q(qid, ord)
             JOIN addresses ON addresses.id = q.qid
             WHERE addresses.project_id = $2
             ORDER BY q.ord",
            &[&ids, &project.0],
            |r| Ok(AddressId(r.try_get(0)?)),
        )
        .await
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        let addresses: Vec<Uuid> = embed.addresses.iter().map(|a| a.0).collect();
        self.execute(
            "create_embed",
            concat!(
                "INSERT INTO embeds (",
                embed_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                &embed.id.0,
                &embed.project_id.0,
                &&embed.token_hash[..],
                &addresses,
                &embed.enabled,
                &embed.created_at.0,
            ],
        )
        .await
        .map(drop)
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        self.fetch_maybe(
            "find_embed",
            concat!(
                "SELECT ",
                embed_cols!(),
                " FROM embeds WHERE token_hash = $1"
            ),
            &[&&token_hash[..]],
            embed_row,
        )
        .await
    }
}

async fn insert_api_token(tx: &Transaction<'_>, st: &Statements, t: &ApiToken) -> Result<(), Fail> {
    st.execute(
        tx,
        "INSERT INTO api_tokens (id, project_id, name, hash, created_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id.0,
            &t.project_id.0,
            &t.name,
            &&t.hash[..],
            &t.created_at.0,
            &t.revoked_at.map(|x| x.0),
        ],
    )
    .await?;
    Ok(())
}

fn page_of<T>(mut items: Vec<T>, size: u32) -> PageOf<T> {
    let more = items.len() > size as usize;
    items.truncate(size as usize);
    PageOf { items, more }
}

const READ_RESOURCE: &str = concat!(
    "SELECT ",
    resource_cols!(),
    " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
     WHERE r.id = $1 AND r.project_id = $2"
);
