//! Employee management: the permission `manage_employees` for the admins existing
//! accounts already have, and an index for ending an employee's UI sessions.
//!
//! `account create` makes the admin (every permission) in the same transaction as the
//! account, before anybody could add a colleague, so an account's first employee is its
//! admin. Only that one is granted `manage_employees`: an employee who merely holds every
//! older permission may have been created by the admin, and must not gain the right to hand
//! out tokens without anyone deciding so. The grant is idempotent.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Permissions are stored as comma-separated wire names; `||` concatenates on
        // PostgreSQL and SQLite alike.
        m.get_connection()
            .execute_unprepared(
                "UPDATE employees \
                 SET permissions = CASE WHEN permissions = '' THEN 'manage_employees' \
                                   ELSE permissions || ',manage_employees' END \
                 WHERE id IN (SELECT min(id) FROM employees GROUP BY account_id) \
                   AND ',' || permissions || ',' NOT LIKE '%,manage_employees,%'",
            )
            .await?;
        m.create_index(
            Index::create()
                .name("ix_ui_sessions_employee_id")
                .table(UiSessions::Table)
                .col(UiSessions::EmployeeId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_ui_sessions_employee_id")
                .table(UiSessions::Table)
                .to_owned(),
        )
        .await
        // The grant stays: taking a permission back from a live admin on a schema
        // rollback would lock the account out of managing its employees.
    }
}

#[derive(DeriveIden)]
enum UiSessions {
    Table,
    EmployeeId,
}
