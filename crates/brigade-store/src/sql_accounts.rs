//! The `Accounts` methods — accounts, sessions, roles and the token signing key — expanded inside `impl_store!` for each backend, with
//! the same SQL text on both.

/// `impl Accounts` for one backend's store.
macro_rules! accounts_methods {
    ($store:ty, $db:ty, begin = $begin:literal, lock = $lock:literal) => {
        #[async_trait::async_trait]
        impl $crate::Accounts for $store {
            async fn create_account(
                &self,
                account: &$crate::NewAccountRecord,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::AccountRow = sqlx::query_as(
                    "INSERT INTO accounts (id, email, password_hash, role, shop_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     RETURNING id, email, role, shop_id, created_at",
                )
                .bind(account.id)
                .bind(&account.email)
                .bind(&account.password_hash)
                .bind(account.role.as_str())
                .bind(account.shop_id)
                .bind(brigade_domain::now())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("an account with this e-mail address exists"))?;
                let created: brigade_domain::Account = row.try_into()?;
                // The account as the API shows it: never the password hash.
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.created", "account", created.id).after(&created),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(created)
            }

            async fn account_credentials(
                &self,
                email: &str,
            ) -> $crate::StoreResult<Option<(brigade_domain::Account, String)>> {
                let row: Option<$crate::rows::CredentialsRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::account_columns!(),
                    ", a.password_hash FROM accounts a WHERE a.email = $1"
                ))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(|row| Ok((row.account.try_into()?, row.password_hash)))
                    .transpose()
            }

            async fn get_account(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                let row: Option<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::account_columns!(),
                    " FROM accounts a WHERE a.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.ok_or($crate::StoreError::NotFound("account"))?.try_into()
            }

            async fn create_session(
                &self,
                account_id: uuid::Uuid,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<uuid::Uuid> {
                use $crate::error::classify;
                let id = uuid::Uuid::now_v7();
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                sqlx::query(
                    "INSERT INTO sessions (id, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(account_id)
                .bind(brigade_domain::now())
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                Self::record(
                    &mut tx,
                    &brigade_domain::Actor::account(account_id),
                    $crate::AuditEntry::new("session.created", "session", id)
                        .after(serde_json::json!({ "account_id": account_id, "expires_at": expires_at })),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(id)
            }

            async fn session(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "SELECT", "SELECT sessions", async move {
                    let row: Option<$crate::rows::SessionRow> = sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::sql_shared::account_columns!(),
                        ", s.expires_at, s.revoked_at FROM sessions s \
                         JOIN accounts a ON a.id = s.account_id WHERE s.id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::error::classify)?;
                    row.map(|row| {
                        Ok($crate::SessionRecord {
                            account: row.account.try_into()?,
                            expires_at: row.expires_at,
                            revoked_at: row.revoked_at,
                        })
                    })
                    .transpose()
                })
                .await
            }

            async fn session_epoch(&self) -> $crate::StoreResult<i64> {
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "SELECT", "SELECT session_epoch", async move {
                    sqlx::query_scalar("SELECT epoch FROM session_epoch WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await
                        .map_err($crate::error::classify)
                })
                .await
            }

            async fn list_accounts(&self) -> $crate::StoreResult<Vec<brigade_domain::Account>> {
                let rows: Vec<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::account_columns!(),
                    " FROM accounts a ORDER BY a.email"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_password_hash(
                &self,
                id: uuid::Uuid,
                password_hash: &str,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let updated = sqlx::query(
                    "UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(password_hash)
                .bind(brigade_domain::now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound("account"));
                }
                // Never the hash itself: only that it changed.
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.password_reset", "account", id),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(())
            }

            async fn set_role(
                &self,
                id: uuid::Uuid,
                role: brigade_domain::Role,
                shop_id: Option<uuid::Uuid>,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let before: Option<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::account_columns!(),
                    " FROM accounts a WHERE a.id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let before: brigade_domain::Account =
                    before.ok_or($crate::StoreError::NotFound("account"))?.try_into()?;
                let row: Option<$crate::rows::AccountRow> = sqlx::query_as(
                    "UPDATE accounts SET role = $1, shop_id = $2, updated_at = $3 WHERE id = $4 \
                     RETURNING id, email, role, shop_id, created_at",
                )
                .bind(role.as_str())
                .bind(shop_id)
                .bind(brigade_domain::now())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let after: brigade_domain::Account =
                    row.ok_or($crate::StoreError::NotFound("account"))?.try_into()?;
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.role_changed", "account", id)
                        .before(serde_json::json!({ "role": before.role, "shop_id": before.shop_id }))
                        .after(serde_json::json!({ "role": after.role, "shop_id": after.shop_id })),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(after)
            }

            async fn revoke_session(
                &self,
                id: uuid::Uuid,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<bool> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let revoked = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(brigade_domain::now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if revoked == 1 {
                    Self::record(
                        &mut tx,
                        actor,
                        $crate::AuditEntry::new("session.revoked", "session", id)
                            .before(serde_json::json!({ "revoked": false }))
                            .after(serde_json::json!({ "revoked": true })),
                    )
                    .await?;
                }
                tx.commit().await.map_err(classify)?;
                Ok(revoked == 1)
            }

            async fn signing_key(&self, id: &str, candidate: &str) -> $crate::StoreResult<String> {
                sqlx::query(
                    "INSERT INTO signing_keys (id, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(candidate)
                .bind(brigade_domain::now())
                .execute(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                sqlx::query_scalar("SELECT secret FROM signing_keys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::error::classify)
            }
        }
    };
}

pub(crate) use accounts_methods;
