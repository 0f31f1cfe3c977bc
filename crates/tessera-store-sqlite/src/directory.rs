//! [`DirectoryStore`] on SQLite: projects, API tokens, resources, addresses and embeds.

use super::*;

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        self.write("create_project", move |c| {
            c.execute(
                "INSERT INTO projects (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![project.id.to_string(), project.name, project.created_at.0],
            )
            .map_err(map_err)?;
            insert_api_token(c, &token).map_err(map_err)
        })
        .await
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.read("get_project", move |c| {
            c.query_row(
                &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = ?1"),
                [id.to_string()],
                project_row,
            )
        })
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.read("list_projects", |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PROJECT_COLS} FROM projects ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([], project_row)?;
            rows.collect()
        })
        .await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        self.write("delete_project", move |c| {
            let id = id.to_string();
            // Families and subscribers carry the project id without a foreign key (they are
            // on the hot path); resources, addresses, tokens and embeds cascade. Only
            // subscriber families are indexed by project, so this scans families: deleting a
            // project is rare, an index entry per grant is not.
            c.execute("DELETE FROM families WHERE project_id = ?1", [&id])
                .map_err(map_err)?;
            c.execute("DELETE FROM resources WHERE project_id = ?1", [&id])
                .map_err(map_err)?;
            let n = c
                .execute("DELETE FROM projects WHERE id = ?1", [&id])
                .map_err(map_err)?;
            found(n)
        })
        .await
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.write("create_api_token", move |c| {
            insert_api_token(c, &token).map_err(map_err)
        })
        .await
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.read("list_api_tokens", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLS} FROM api_tokens WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([project.to_string()], api_token_row)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        self.write("revoke_api_token", move |c| {
            let n = c
                .execute(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                    params![id.to_string(), at.0],
                )
                .map_err(map_err)?;
            found(n)
        })
        .await
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        self.read("find_api_token", move |c| {
            c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLS} FROM api_tokens
                 WHERE hash = ?1 AND project_id = ?2 AND revoked_at IS NULL"
            ))?
            .query_row(params![&hash[..], project.to_string()], api_token_row)
            .optional()
        })
        .await
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        self.write("create_resource", move |c| {
            insert_resource(c, &new, None).map_err(map_err)
        })
        .await
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.read("get_resource", move |c| {
            c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                 WHERE r.id = ?1 AND r.project_id = ?2"
            ))?
            .query_row(params![id.to_string(), project.to_string()], resource_row)
        })
        .await
    }

    async fn list_resources(&self, listing: ResourceListing) -> StoreResult<PageOf<Resource>> {
        self.read("list_resources", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                 WHERE r.project_id = ?1 AND (?2 IS NULL OR r.kind = ?2) AND (?3 IS NULL OR r.id > ?3)
                 ORDER BY r.id LIMIT ?4"
            ))?;
            let rows = st.query_map(
                params![
                    listing.project.to_string(),
                    listing.kind.map(|k| k.as_str()),
                    listing.page.after.map(|u| u.to_string()),
                    listing.page.size as i64 + 1
                ],
                resource_row,
            )?;
            page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, listing.page.size)
        })
        .await
    }

    async fn update_subscriber(&self, update: SubscriberUpdate) -> StoreResult<Resource> {
        self.write("update_subscriber", move |c| {
            let n = update_subscriber_row(
                c,
                update.project,
                update.id,
                &update.patch,
                update.password_hash.as_deref(),
                update.at,
            )
            .map_err(map_err)?;
            found(n)?;
            // Changing the password revokes the subscriber's sessions (security.md).
            if update.password_hash.is_some() {
                revoke_subject(c, update.project, update.id, update.at).map_err(map_err)?;
            }
            read_resource(c, update.project, update.id)
        })
        .await
    }

    async fn update_room(&self, update: RoomUpdate) -> StoreResult<Resource> {
        self.write("update_room", move |c| {
            let mut r = read_resource(c, update.project, update.id)?;
            if r.kind != update.kind {
                return Err(StoreError::NotFound);
            }
            if let Some(n) = &update.patch.name {
                r.name = n.clone();
            }
            if let Some(d) = &update.patch.display_name {
                r.display_name = d.clone();
            }
            r.data.extend(update.patch.data.clone());
            c.execute(
                "UPDATE resources SET name = ?2, display_name = ?3, data = ?4, updated_at = ?5 WHERE id = ?1",
                params![
                    update.id.to_string(),
                    r.name,
                    r.display_name,
                    serde_json::Value::Object(r.data.clone()).to_string(),
                    update.at.0
                ],
            )
            .map_err(map_err)?;
            c.execute(
                "UPDATE addresses SET name = ?2, display_name = ?3 WHERE resource_id = ?1",
                params![update.id.to_string(), r.name, r.display_name],
            )
            .map_err(map_err)?;
            r.updated_at = update.at;
            Ok(r)
        })
        .await
    }

    async fn delete_resource(&self, deletion: ResourceDeletion) -> StoreResult<()> {
        self.write("delete_resource", move |c| {
            let n = c
                .execute(
                    "DELETE FROM resources WHERE id = ?1 AND project_id = ?2 AND kind = ?3",
                    params![
                        deletion.id.to_string(),
                        deletion.project.to_string(),
                        deletion.kind.as_str()
                    ],
                )
                .map_err(map_err)?;
            found(n)?;
            if deletion.kind == ResourceKind::Subscriber {
                revoke_subject(c, deletion.project, deletion.id, deletion.at).map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.read("get_address", move |c| {
            c.prepare_cached(&format!(
                "SELECT {ADDRESS_COLS} FROM addresses WHERE id = ?1 AND project_id = ?2"
            ))?
            .query_row(params![id.to_string(), project.to_string()], address_row)
        })
        .await
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        q: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        self.read("list_addresses", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ADDRESS_COLS} FROM addresses
                 WHERE project_id = ?1
                   AND (?2 IS NULL OR kind = ?2)
                   AND (?3 IS NULL OR display_name = ?3)
                   AND (?4 IS NULL OR resource_id = ?4)
                   AND (?5 IS NULL OR kind != 'subscriber' OR resource_id = ?5)
                   AND (?6 IS NULL OR id > ?6)
                 ORDER BY id LIMIT ?7"
            ))?;
            let rows = st.query_map(
                params![
                    project.to_string(),
                    q.kind.map(|k| k.as_str()),
                    q.display_name,
                    q.resource_id.map(|r| r.to_string()),
                    q.visible_to.map(|r| r.to_string()),
                    page.after.map(|u| u.to_string()),
                    page.size as i64 + 1
                ],
                address_row,
            )?;
            page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, page.size)
        })
        .await
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let ids = ids.to_vec();
        self.read("existing_addresses", move |c| {
            let mut st =
                c.prepare_cached("SELECT 1 FROM addresses WHERE id = ?1 AND project_id = ?2")?;
            let project = project.to_string();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if st.exists(params![id.to_string(), project])? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        self.write("create_embed", move |c| {
            let addrs: Vec<String> = embed.addresses.iter().map(|a| a.to_string()).collect();
            c.execute(
                "INSERT INTO embeds (id, project_id, token_hash, addresses, enabled, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    embed.id.to_string(),
                    embed.project_id.to_string(),
                    &embed.token_hash[..],
                    serde_json::to_string(&addrs).unwrap_or_default(),
                    embed.enabled,
                    embed.created_at.0
                ],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        self.read("find_embed", move |c| {
            c.prepare_cached(
                "SELECT id, project_id, token_hash, addresses, enabled, created_at FROM embeds WHERE token_hash = ?1",
            )?
            .query_row([&token_hash[..]], embed_row)
            .optional()
        })
        .await
    }
}

fn insert_api_token(c: &Connection, t: &ApiToken) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO api_tokens (id, project_id, name, hash, created_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.id.to_string(),
            t.project_id.to_string(),
            t.name,
            &t.hash[..],
            t.created_at.0,
            t.revoked_at.map(|x| x.0)
        ],
    )
    .map(|_| ())
}

fn read_resource(c: &Connection, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
    c.prepare_cached(&format!(
        "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
         WHERE r.id = ?1 AND r.project_id = ?2"
    ))
    .and_then(|mut st| st.query_row(params![id.to_string(), project.to_string()], resource_row))
    .map_err(map_err)
}

fn page_of<T>(mut items: Vec<T>, size: u32) -> rusqlite::Result<PageOf<T>> {
    let more = items.len() > size as usize;
    items.truncate(size as usize);
    Ok(PageOf { items, more })
}
