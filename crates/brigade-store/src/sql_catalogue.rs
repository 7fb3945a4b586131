//! The `Catalogue` methods — shops, their stations, items and the menu — expanded inside `impl_store!` for each backend, with
//! the same SQL text on both.

/// `impl Catalogue` for one backend's store.
macro_rules! catalogue_methods {
    ($store:ty, $db:ty, begin = $begin:literal, lock = $lock:literal) => {
        #[async_trait::async_trait]
        impl $crate::Catalogue for $store {
            async fn create_shop(
                &self,
                shop: &brigade_domain::NewShop,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Shop> {
                use $crate::error::classify;
                let now = brigade_domain::now();
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::ShopRow = sqlx::query_as(concat!(
                    "INSERT INTO shops (",
                    $crate::sql_shared::shop_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
                    $crate::sql_shared::shop_columns!()
                ))
                .bind(uuid::Uuid::now_v7())
                .bind(&shop.name)
                .bind(&shop.region)
                .bind(shop.location.lat)
                .bind(shop.location.lon)
                .bind(shop.open)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("a shop with this name already exists"))?;
                let shop: brigade_domain::Shop = row.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("shop.created", "shop", shop.id).after(&shop),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(shop)
            }

            async fn list_shops(
                &self,
                filter: &$crate::ShopFilter,
            ) -> $crate::StoreResult<Vec<brigade_domain::Shop>> {
                let rows: Vec<$crate::rows::ShopRow> = self
                    .stale_read(|pool| async move {
                        sqlx::query_as(concat!(
                            "SELECT ",
                            $crate::sql_shared::shop_columns!(),
                            " FROM shops WHERE ($1 IS NULL OR region = $1) \
                             AND ($2 IS NULL OR open = $2) ORDER BY name"
                        ))
                        .bind(filter.region.as_deref())
                        .bind(filter.open)
                        .fetch_all(&pool)
                        .await
                    })
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_shop(&self, id: uuid::Uuid) -> $crate::StoreResult<brigade_domain::Shop> {
                let row: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::shop_columns!(),
                    " FROM shops WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(Into::into).ok_or($crate::StoreError::NotFound("shop"))
            }

            async fn update_shop(
                &self,
                id: uuid::Uuid,
                patch: &brigade_domain::ShopPatch,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Shop> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let before: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::shop_columns!(),
                    " FROM shops WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let before: brigade_domain::Shop =
                    before.ok_or($crate::StoreError::NotFound("shop"))?.into();
                let row: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "UPDATE shops SET name = COALESCE($1, name), region = COALESCE($2, region), \
                     lat = COALESCE($3, lat), lon = COALESCE($4, lon), open = COALESCE($5, open), \
                     updated_at = $6 WHERE id = $7 RETURNING ",
                    $crate::sql_shared::shop_columns!()
                ))
                .bind(patch.name.as_deref())
                .bind(patch.region.as_deref())
                .bind(patch.location.map(|l| l.lat))
                .bind(patch.location.map(|l| l.lon))
                .bind(patch.open)
                .bind(brigade_domain::now())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::error::unique_as("a shop with this name already exists"))?;
                let shop: brigade_domain::Shop =
                    row.ok_or($crate::StoreError::NotFound("shop"))?.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("shop.updated", "shop", id)
                        .before(&before)
                        .after(&shop),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(shop)
            }

            async fn create_station(
                &self,
                shop_id: uuid::Uuid,
                station: &brigade_domain::NewStation,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Station> {
                use $crate::error::{classify, unique_as};
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                Self::require(&mut *tx, "SELECT 1 FROM shops WHERE id = $1", shop_id, "shop")
                    .await?;
                let id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO stations (id, shop_id, name, capacity, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(shop_id)
                .bind(&station.name)
                .bind(station.capacity)
                .bind(brigade_domain::now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as("this shop already has a station with this name"))?;
                for (category, seconds) in &station.prep_seconds {
                    let detail = format!(
                        "category {category} is already cooked at another station of this shop"
                    );
                    sqlx::query(
                        "INSERT INTO station_categories (station_id, shop_id, category, prep_seconds) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(shop_id)
                    .bind(category)
                    .bind(*seconds)
                    .execute(&mut *tx)
                    .await
                    .map_err(unique_as(&detail))?;
                }
                let station = brigade_domain::Station {
                    id,
                    shop_id,
                    name: station.name.clone(),
                    capacity: station.capacity,
                    prep_seconds: station.prep_seconds.clone(),
                };
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("station.created", "station", id).after(&station),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(station)
            }

            async fn list_stations(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::Station>> {
                use $crate::error::classify;
                use $crate::rows::*;
                let stations: Vec<StationRow> = sqlx::query_as(
                    "SELECT id, shop_id, name, capacity FROM stations WHERE shop_id = $1 ORDER BY name",
                )
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                let categories: Vec<StationCategoryRow> = sqlx::query_as(
                    "SELECT station_id, category, prep_seconds FROM station_categories \
                     WHERE shop_id = $1 ORDER BY category",
                )
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                Ok(stations
                    .into_iter()
                    .map(|station| station.into_station(&categories))
                    .collect())
            }

            async fn station_loads(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::StationLoad>> {
                let rows: Vec<$crate::rows::LoadRow> = sqlx::query_as(concat!(
                    "SELECT s.id AS station_id, s.shop_id, s.capacity, \
                     CAST(COALESCE(SUM(t.work_seconds), 0) AS BIGINT) AS queued_work_seconds \
                     FROM stations s LEFT JOIN tickets t ON t.station_id = s.id AND t.status IN ",
                    $crate::sql_shared::open_ticket!(),
                    " WHERE s.shop_id = $1 GROUP BY s.id, s.shop_id, s.capacity"
                ))
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn create_item(
                &self,
                item: &brigade_domain::NewItem,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Item> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::ItemRow = sqlx::query_as(concat!(
                    "INSERT INTO items (",
                    $crate::sql_shared::item_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                    $crate::sql_shared::item_columns!()
                ))
                .bind(uuid::Uuid::now_v7())
                .bind(&item.sku)
                .bind(&item.name)
                .bind(&item.description)
                .bind(&item.category)
                .bind(item.price_minor)
                .bind(&item.currency)
                .bind(brigade_domain::now())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("an item with this sku already exists"))?;
                let item: brigade_domain::Item = row.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("item.created", "item", item.id).after(&item),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(item)
            }

            async fn list_items(&self) -> $crate::StoreResult<Vec<brigade_domain::Item>> {
                let rows: Vec<$crate::rows::ItemRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::item_columns!(),
                    " FROM items ORDER BY category, name"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_item(&self, id: uuid::Uuid) -> $crate::StoreResult<brigade_domain::Item> {
                let row: Option<$crate::rows::ItemRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::item_columns!(),
                    " FROM items WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(Into::into).ok_or($crate::StoreError::NotFound("item"))
            }

            async fn set_availability(
                &self,
                shop_id: uuid::Uuid,
                item_id: uuid::Uuid,
                available: bool,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                Self::require(&mut *tx, "SELECT 1 FROM shops WHERE id = $1", shop_id, "shop")
                    .await?;
                Self::require(&mut *tx, "SELECT 1 FROM items WHERE id = $1", item_id, "item")
                    .await?;
                let before: Option<bool> = sqlx::query_scalar(
                    "SELECT available FROM shop_items WHERE shop_id = $1 AND item_id = $2",
                )
                .bind(shop_id)
                .bind(item_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let mut entry =
                    $crate::AuditEntry::new("menu.availability_set", "menu", format!("{shop_id}/{item_id}"))
                        .after(serde_json::json!({ "shop_id": shop_id, "item_id": item_id, "available": available }));
                if let Some(before) = before {
                    entry = entry.before(serde_json::json!({ "available": before }));
                }
                Self::record(&mut tx, actor, entry).await?;
                sqlx::query(
                    "INSERT INTO shop_items (shop_id, item_id, available) VALUES ($1, $2, $3) \
                     ON CONFLICT (shop_id, item_id) DO UPDATE SET available = excluded.available",
                )
                .bind(shop_id)
                .bind(item_id)
                .bind(available)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                Ok(())
            }

            async fn menu(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::MenuItem>> {
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "SELECT", "SELECT items", async move {
                    let rows: Vec<$crate::rows::MenuRow> = self
                        .stale_read(|pool| async move {
                            sqlx::query_as(
                                "SELECT i.id AS item_id, i.sku, i.name, i.description, i.category, \
                                 i.price_minor, i.currency, si.available, sc.station_id, \
                                 sc.prep_seconds FROM shop_items si JOIN items i ON i.id = si.item_id \
                                 JOIN station_categories sc ON sc.shop_id = si.shop_id \
                                 AND sc.category = i.category \
                                 WHERE si.shop_id = $1 ORDER BY i.category, i.name",
                            )
                            .bind(shop_id)
                            .fetch_all(&pool)
                            .await
                        })
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                })
                .await
            }
        }
    };
}

pub(crate) use catalogue_methods;
