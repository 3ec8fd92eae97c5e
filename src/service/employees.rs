//! Employees of an account, for employees holding `manage_employees`. A new employee's token is shown exactly once
//! (only its hash is stored); deleting an employee revokes it at once: the row goes, so
//! the next request with its token answers 401 (token lookups are never cached), and its
//! operator-page sessions are deleted with it.
//!
//! Deletion is hard: nothing else refers to an employee but its UI sessions (orders and
//! the sync log name no employee), so a soft-deleted row would only be a revoked token
//! every lookup had to remember to skip.
//!
//! An account always keeps one employee who can manage the others: deleting the last
//! holder of `manage_employees` is refused (409). Creations and deletions of an account
//! serialize on its row and check the caller again under that lock, so two managers
//! deleting each other at the same moment cannot both succeed, and a manager revoked while
//! its request waited neither creates nor deletes anyone.
//!
//! The JSON API (`api::employees`) and the operator UI's employees screen both call these.

use chrono::{DateTime, Utc};
use entity::{accounts, employees, ui_sessions};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, Iterable,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, ServiceError, ServiceResult, Services};
use crate::{
    domain::{Permission, Spelled},
    secrets,
};

/// Longest accepted employee name, in characters.
pub const NAME_MAX_CHARS: usize = 100;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployee {
    /// 1–100 characters, no control characters; surrounding spaces are dropped.
    pub name: String,
    /// Only permissions the caller holds itself can be granted.
    #[serde(default)]
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<Spelled<Permission>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEmployee {
    pub id: i64,
    /// Shown once; only its hash is kept.
    pub token: String,
}

/// An employee as the API shows it: never the token nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeView {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<Permission>,
    pub created_at: DateTime<Utc>,
}

/// Permissions in a stable order (the order of `Permission::ALL`).
fn ordered(permissions: impl IntoIterator<Item = Permission>) -> Vec<Permission> {
    let mut list: Vec<Permission> = permissions.into_iter().collect();
    list.sort_by_key(|p| Permission::iter().position(|known| known == *p));
    list.dedup();
    list
}

fn manages(employee: &employees::Model) -> bool {
    employee.permissions.contains(Permission::ManageEmployees)
}

impl From<employees::Model> for EmployeeView {
    fn from(e: employees::Model) -> Self {
        Self {
            permissions: ordered(e.permissions.iter()),
            id: e.id,
            name: e.name,
            created_at: e.created_at,
        }
    }
}

/// The trimmed name, or a 400 saying what is wrong with it.
fn valid_name(raw: &str) -> ServiceResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ServiceError::Invalid("`name` must not be empty".into()));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(ServiceError::Invalid(format!(
            "`name` must be at most {NAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "`name` must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The account's employees, read after locking the account's row, once the caller is
/// known to still be one of them with `manage_employees`.
///
/// Every change to an account's staff takes this lock first, so each sees the one before
/// it committed: of two managers deleting each other the second finds itself gone (or
/// last) instead of both succeeding, and a manager deleted while its request waited has
/// no right left to use (401).
async fn locked_staff(
    txn: &DatabaseTransaction,
    caller: &Caller,
    action: &str,
) -> ServiceResult<Vec<employees::Model>> {
    accounts::Entity::find_by_id(caller.account_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    let staff = employees::Entity::find()
        .filter(employees::Column::AccountId.eq(caller.account_id))
        .all(txn)
        .await?;
    let me = staff
        .iter()
        .find(|e| e.id == caller.employee_id)
        .ok_or(ServiceError::Unauthenticated)?;
    Caller::from(me).require(Permission::ManageEmployees, action)?;
    Ok(staff)
}

/// Creates an employee of the caller's account and returns its token, the only time it is
/// ever shown. Needs `manage_employees`; an employee can grant only permissions it holds
/// itself, so nobody can create a colleague more powerful than themselves.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, new_employee_id = tracing::field::Empty))]
pub async fn create_employee(
    services: &Services,
    caller: &Caller,
    body: NewEmployee,
) -> ServiceResult<CreatedEmployee> {
    const ACTION: &str = "creating an employee";
    caller.require(Permission::ManageEmployees, ACTION)?;
    let name = valid_name(&body.name)?;
    let mut permissions = Vec::new();
    for raw in &body.permissions {
        let permission = raw
            .parse()
            .map_err(|e| ServiceError::Invalid(format!("`permissions`: {e}")))?;
        permissions.push(permission);
    }
    let permissions = ordered(permissions);
    for permission in &permissions {
        caller.require(*permission, "granting a permission")?;
    }
    let txn = services.db.begin().await?;
    // A manager revoked while this request was on its way hands out nothing.
    locked_staff(&txn, caller, ACTION).await?;
    let token = secrets::new_api_token();
    let employee = employees::ActiveModel {
        account_id: Set(caller.account_id),
        name: Set(name),
        token_hash: Set(secrets::hash_api_token(&token)),
        permissions: Set(permissions.iter().copied().collect()),
        created_at: Set(services.clock.now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    tracing::Span::current().record("new_employee_id", employee.id);
    tracing::info!("employee created");
    Ok(CreatedEmployee {
        id: employee.id,
        token,
    })
}

/// The caller's account's employees, oldest first. Needs `manage_employees`.
pub async fn list_employees(
    db: &DatabaseConnection,
    caller: &Caller,
) -> ServiceResult<Vec<EmployeeView>> {
    caller.require(Permission::ManageEmployees, "listing employees")?;
    let rows = employees::Entity::find()
        .filter(employees::Column::AccountId.eq(caller.account_id))
        .order_by_asc(employees::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(EmployeeView::from).collect())
}

/// Deletes employee `id` of the caller's account with its UI sessions, in one
/// transaction. Another account's employee is 404; the last holder of
/// `manage_employees` is 409. An employee may delete themselves unless they are that one.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, employee_id = id))]
pub async fn delete_employee(services: &Services, caller: &Caller, id: i64) -> ServiceResult<()> {
    const ACTION: &str = "deleting an employee";
    caller.require(Permission::ManageEmployees, ACTION)?;
    let txn = services.db.begin().await?;
    let staff = locked_staff(&txn, caller, ACTION).await?;
    let target = staff
        .iter()
        .find(|e| e.id == id)
        .ok_or(ServiceError::NotFound)?;
    if manages(target) && !staff.iter().any(|e| e.id != id && manages(e)) {
        return Err(ServiceError::Conflict(
            "this is the account's last employee with the permission `manage_employees`; \
             add another employee with it before deleting this one"
                .into(),
        ));
    }
    // Sessions first: the foreign key cascades on PostgreSQL and SQLite alike, but saying
    // so here keeps revocation from depending on a schema detail.
    ui_sessions::Entity::delete_many()
        .filter(ui_sessions::Column::EmployeeId.eq(id))
        .exec(&txn)
        .await?;
    employees::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    tracing::info!("employee deleted: token and UI sessions revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_and_must_be_short_printable_and_present() {
        assert_eq!(valid_name("  Olha ").unwrap(), "Olha");
        assert!(valid_name("   ").is_err());
        assert!(valid_name("a\u{0}b").is_err());
        assert!(valid_name(&"я".repeat(NAME_MAX_CHARS)).is_ok());
        let long = valid_name(&"я".repeat(NAME_MAX_CHARS + 1)).unwrap_err();
        assert!(long.to_string().contains("at most"), "{long}");
    }

    /// An account created before `manage_employees` existed: its admin (the first
    /// employee) gains it on upgrade, a colleague holding every older permission does not.
    #[tokio::test]
    async fn upgrading_grants_manage_employees_to_each_accounts_first_employee_only() {
        use migration::{Migrator, MigratorTrait};
        use sea_orm::{ConnectOptions, ConnectionTrait, Database};

        // Arrange: the schema as it was just before the grant, with two accounts.
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1);
        let db = Database::connect(options).await.unwrap();
        let grant = Migrator::migrations()
            .iter()
            .position(|m| m.name() == "m20261130_000002_employees")
            .expect("the migration is listed");
        Migrator::up(&db, Some(grant as u32)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO accounts (id, name, currency, created_at) VALUES \
               (1, 'a', 'UAH', '2026-01-01T00:00:00Z'), (2, 'b', 'UAH', '2026-01-01T00:00:00Z'); \
             INSERT INTO employees (id, account_id, name, token_hash, permissions, created_at) VALUES \
               (10, 1, 'admin', 'h10', 'goods_without_write_off,manage_integrations', '2026-01-01T00:00:00Z'), \
               (11, 1, 'peer', 'h11', 'goods_without_write_off,manage_integrations', '2026-01-01T00:00:00Z'), \
               (20, 2, 'admin', 'h20', '', '2026-01-01T00:00:00Z');",
        )
        .await
        .unwrap();

        // Act
        Migrator::up(&db, None).await.unwrap();

        // Assert
        let stored = |id: i64| {
            let db = db.clone();
            async move {
                employees::Entity::find_by_id(id)
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap()
                    .permissions
                    .to_string()
            }
        };
        assert_eq!(
            stored(10).await,
            "goods_without_write_off,manage_integrations,manage_employees"
        );
        assert_eq!(
            stored(11).await,
            "goods_without_write_off,manage_integrations"
        );
        assert_eq!(stored(20).await, "manage_employees");
    }

    #[test]
    fn permissions_are_listed_once_in_a_stable_order() {
        let list = ordered([
            Permission::ManageEmployees,
            Permission::GoodsWithoutWriteOff,
            Permission::ManageEmployees,
        ]);
        assert_eq!(
            list,
            [
                Permission::GoodsWithoutWriteOff,
                Permission::ManageEmployees
            ]
        );
    }
}
