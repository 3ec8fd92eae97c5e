//! Waybills (ТТН) set in RO App and sent to Prom: the number and carrier an employee set
//! (`waybill_number`, `waybill_carrier`), the ones Prom last took (`waybill_sent_*`; both
//! null while Prom has none of ours, or when a call's outcome is unknown), and the claim
//! of the publisher sending it (`waybill_claim_id`, `waybill_claimed_until`), so that two
//! numbers of one order never reach Prom at once. The number shown to people stays
//! `delivery_declaration_number`.
//!
//! On PostgreSQL the outbox's kind constraint is widened to `waybill`, and the carrier
//! columns get one of their own (SQLite keeps relying on the entity enums, see
//! `m20261130_000007_enum_checks`).

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest waybill number any carrier uses (Ukrposhta's and Meest's go up to 20).
const NUMBER_LEN: u32 = 32;
const CARRIERS: &str = "'nova_poshta', 'ukrposhta', 'meest'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE, so each column is its own statement.
        let columns = [
            string_len_null(Orders::WaybillNumber, NUMBER_LEN),
            string_len_null(Orders::WaybillCarrier, 32),
            string_len_null(Orders::WaybillSentNumber, NUMBER_LEN),
            string_len_null(Orders::WaybillSentCarrier, 32),
            string_len_null(Orders::WaybillClaimId, 64),
            timestamp_with_time_zone_null(Orders::WaybillClaimedUntil),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        if m.get_database_backend() == DatabaseBackend::Postgres {
            let db = m.get_connection();
            set_outbox_kinds(m, "'order_status', 'waybill'").await?;
            for column in ["waybill_carrier", "waybill_sent_carrier"] {
                db.execute_unprepared(&format!(
                    "ALTER TABLE orders ADD CONSTRAINT ck_orders_{column} \
                     CHECK ({column} IN ({CARRIERS}))"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            let db = m.get_connection();
            for column in ["waybill_carrier", "waybill_sent_carrier"] {
                db.execute_unprepared(&format!(
                    "ALTER TABLE orders DROP CONSTRAINT ck_orders_{column}"
                ))
                .await?;
            }
            set_outbox_kinds(m, "'order_status'").await?;
        }
        for column in [
            Orders::WaybillNumber,
            Orders::WaybillCarrier,
            Orders::WaybillSentNumber,
            Orders::WaybillSentCarrier,
            Orders::WaybillClaimId,
            Orders::WaybillClaimedUntil,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Replaces the outbox's kind constraint (same name as before) with one allowing `kinds`.
async fn set_outbox_kinds(m: &SchemaManager<'_>, kinds: &str) -> Result<(), DbErr> {
    let db = m.get_connection();
    db.execute_unprepared("ALTER TABLE outbox DROP CONSTRAINT ck_outbox_kind")
        .await?;
    db.execute_unprepared(&format!(
        "ALTER TABLE outbox ADD CONSTRAINT ck_outbox_kind CHECK (kind IN ({kinds}))"
    ))
    .await?;
    Ok(())
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    WaybillNumber,
    WaybillCarrier,
    WaybillSentNumber,
    WaybillSentCarrier,
    WaybillClaimId,
    WaybillClaimedUntil,
}
