//! The employees screen, for employees with `manage_employees`: who has access and with
//! which permissions, adding an employee (the new token is shown on that one answer
//! only) and revoking one. Everything goes through the employee services the JSON API
//! uses too, so the same rules hold: only held permissions can be granted, another account's employee
//! is not found, and the last manager cannot be deleted (shown as a notice).

use actix_web::{
    http::{header, StatusCode},
    web, HttpResponse,
};
use maud::{html, Markup};
use sea_orm::Iterable;

use super::{
    i18n::Texts,
    page::{button, csrf, frame, html_response, lacks, notice, respond, when},
    session::{Operator, Posted},
};
use crate::{
    domain::{Permission, Spelled},
    error::ApiError,
    http::AppState,
    service::{
        employees::{self as service, NewEmployee, NAME_MAX_CHARS},
        ServiceError,
    },
};

fn permission_label(t: &Texts, permission: Permission) -> &'static str {
    match permission {
        Permission::GoodsWithoutWriteOff => t.perm_goods,
        Permission::ManageIntegrations => t.perm_integrations,
        Permission::ManageEmployees => t.perm_employees,
    }
}

/// The screen, with `done` (a notice) above it, answered with `status`.
async fn employees_page(
    op: &Operator,
    state: &AppState,
    done: Option<Markup>,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let t = op.lang.texts();
    let body = match lacks(op, Permission::ManageEmployees) {
        Some(reason) => html! {
            (notice(reason, "warn"))
            form method="post" action="/ui/employees" {
                (csrf(op))
                (button(t.add_employee, Some(reason), None))
            }
        },
        None => {
            let staff = service::list_employees(&state.services.db, &op.caller).await?;
            html! {
                (done.unwrap_or_default())
                table id="employees" {
                    thead { tr {
                        th { (t.employee_name) } th { (t.col_permissions) } th { (t.col_created) } th {}
                    } }
                    tbody {
                        @for e in &staff {
                            tr {
                                td {
                                    (e.name)
                                    @if e.id == op.caller.employee_id { " " small { (t.you) } }
                                }
                                td { @for p in &e.permissions { (permission_label(t, *p)) br; } }
                                td { (when(Some(e.created_at), t)) }
                                td {
                                    form method="post" action=(format!("/ui/employees/{}/delete", e.id)) {
                                        (csrf(op))
                                        (button(t.revoke, None, None))
                                    }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { (t.add_employee) }
                    form.settings method="post" action="/ui/employees" {
                        (csrf(op))
                        label { (t.employee_name) " "
                            input name="name" required maxlength=(NAME_MAX_CHARS) autocomplete="off"; }
                        @for p in Permission::iter() {
                            @let refused = lacks(op, p);
                            label {
                                input type="checkbox" name="permission" value=(p.as_str()) disabled[refused.is_some()];
                                " " (permission_label(t, p))
                                @if let Some(reason) = refused { " " span.reason { (reason) } }
                            }
                        }
                        button type="submit" { (t.add_employee) }
                    }
                }
            }
        }
    };
    Ok(html_response(
        status,
        frame(op, "/ui/employees", t.employees_title, body),
    ))
}

/// `GET /ui/employees`: the list and the form for `manage_employees`; the reason for
/// everyone else.
pub async fn list(op: Operator, state: web::Data<AppState>) -> HttpResponse {
    let result = employees_page(&op, &state, None, StatusCode::OK).await;
    respond(&op, result)
}

/// `POST /ui/employees`: creates the employee and shows its token once. A refused name
/// or permission shows the screen again with the reason.
#[tracing::instrument(skip_all, fields(account_id = posted.op.caller.account_id))]
pub async fn create(posted: Posted, state: web::Data<AppState>) -> HttpResponse {
    let op = &posted.op;
    let body = NewEmployee {
        name: posted.fields.get("name").unwrap_or_default().to_owned(),
        permissions: posted.fields.all("permission").map(Spelled::from).collect(),
    };
    let result = async {
        let t = op.lang.texts();
        match service::create_employee(&state.services, &op.caller, body).await {
            Ok(created) => {
                let shown = html! {
                    div.notice.ok role="status" {
                        (t.new_token_once) " " code.secret id="new-token" { (created.token) }
                    }
                };
                employees_page(op, &state, Some(shown), StatusCode::OK).await
            }
            Err(ServiceError::Invalid(why)) => {
                let refused = notice(&why, "error");
                employees_page(op, &state, Some(refused), StatusCode::BAD_REQUEST).await
            }
            Err(other) => Err(other.into()),
        }
    }
    .await;
    respond(op, result)
}

/// `POST /ui/employees/{id}/delete`: revokes the employee's access. Revoking oneself ends
/// one's own session, so that answer leads to the sign-in page.
#[tracing::instrument(skip_all, fields(account_id = posted.op.caller.account_id))]
pub async fn delete(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let t = op.lang.texts();
        match service::delete_employee(&state.services, &op.caller, *id).await {
            Ok(()) if *id == op.caller.employee_id => Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/ui/login"))
                .finish()),
            Ok(()) => {
                employees_page(op, &state, Some(notice(t.revoked, "ok")), StatusCode::OK).await
            }
            Err(ServiceError::Conflict(_)) => {
                let refused = notice(t.last_manager, "error");
                employees_page(op, &state, Some(refused), StatusCode::CONFLICT).await
            }
            Err(other) => Err(other.into()),
        }
    }
    .await;
    respond(op, result)
}
