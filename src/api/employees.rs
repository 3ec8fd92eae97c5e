//! The employees endpoints of the JSON API (`GET|POST /api/employees`, `DELETE
//! /api/employees/{id}`): each calls `service::employees`, where the rules are (only held
//! permissions can be granted, the last manager stays).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{auth::Caller, ErrorBody};
pub use crate::service::employees::{CreatedEmployee, EmployeeView, NewEmployee};
use crate::{error::ApiError, http::AppState, service::employees as service};

#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeList {
    pub employees: Vec<EmployeeView>,
}

/// Creates an employee of the caller's account.
#[utoipa::path(
    post, path = "/api/employees", operation_id = "createEmployee", tag = "employees",
    request_body = NewEmployee,
    responses(
        (status = 201, body = CreatedEmployee),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Caller,
    body: web::Json<NewEmployee>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let created = service::create_employee(&state.services, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

/// The employees of the caller's account (never their tokens).
#[utoipa::path(
    get, path = "/api/employees", operation_id = "listEmployees", tag = "employees",
    responses(
        (status = 200, body = EmployeeList),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let employees = service::list_employees(&state.services.db, &caller).await?;
    Ok(HttpResponse::Ok().json(EmployeeList { employees }))
}

/// Deletes an employee: its token answers 401 from now on and its UI sessions end.
#[utoipa::path(
    delete, path = "/api/employees/{id}", operation_id = "deleteEmployee", tag = "employees",
    params(("id" = i64, Path, description = "Employee id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The account's last employee with `manage_employees`"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service::delete_employee(&state.services, &caller, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
