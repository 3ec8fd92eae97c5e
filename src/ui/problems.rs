//! Sync problems, for employees who manage integrations (others get 403): notifications
//! the importer rejected (with their reasons, from the sync log) and the account's dead
//! letters of both lanes, each with a requeue button. Dead letters are read and requeued
//! through the same account-scoped services as `/api/dead-letters`, from the database:
//! opening this page never touches the broker.

use actix_web::{http::StatusCode, web, HttpResponse};
use maud::html;

use super::{
    orders::log_table,
    page::{button, csrf, frame, html_response, notice, respond, when},
    session::{Operator, Posted},
};
use crate::{
    domain::{Outcome, Permission},
    error::ApiError,
    http::AppState,
    service::{dead_letters, sync_log},
};

const REJECTED_SHOWN: u64 = 100;
const DEAD_LETTERS_SHOWN: u64 = 200;

async fn problems_page(
    op: &Operator,
    state: &AppState,
    done: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    op.caller
        .require(Permission::ManageIntegrations, "viewing sync problems")?;
    let t = op.lang.texts();
    let db = &state.services.db;
    let rejected = sync_log::entries(
        db,
        &op.caller,
        None,
        Some(Outcome::Rejected),
        REJECTED_SHOWN,
    )
    .await?;
    let letters = dead_letters::list(db, &op.caller, None, DEAD_LETTERS_SHOWN).await?;
    let body = html! {
        @if let Some(done) = done { (notice(done, "ok")) }
        section id="rejected" {
            h2 { (t.rejected) }
            (log_table(t, &rejected))
        }
        section id="dead-letters" {
            h2 { (t.dead_letters) }
            @if letters.is_empty() { p { (t.no_entries) } } @else {
                table {
                    thead { tr { th { (t.col_at) } th { (t.col_lane) } th { (t.col_order) } th { (t.col_attempts) } th { (t.col_reason) } th {} } }
                    tbody {
                        @for letter in &letters {
                            tr {
                                td { (when(Some(letter.dead_at), t)) }
                                td { (letter.lane) }
                                td { (letter.order_id.map(|id| id.to_string()).unwrap_or_default()) }
                                td.num { (letter.attempts) }
                                td { (letter.last_error.as_deref().unwrap_or_default()) }
                                td {
                                    form method="post" action="/ui/problems/requeue" {
                                        (csrf(op))
                                        input type="hidden" name="id" value=(letter.id);
                                        (button(t.requeue, None, None))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        frame(op, "/ui/problems", t.problems_title, body),
    ))
}

/// `GET /ui/problems`
pub async fn show(op: Operator, state: web::Data<AppState>) -> HttpResponse {
    let result = problems_page(&op, &state, None).await;
    respond(&op, result)
}

/// `POST /ui/problems/requeue`: one dead letter back to its work queue, if it is one of
/// the employee's account (404 otherwise, and nothing moves).
#[tracing::instrument(skip_all, fields(account_id = posted.op.caller.account_id))]
pub async fn requeue(posted: Posted, state: web::Data<AppState>) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        op.caller
            .require(Permission::ManageIntegrations, "requeueing a dead letter")?;
        let id: i64 = posted
            .fields
            .get("id")
            .unwrap_or_default()
            .parse()
            .map_err(|_| ApiError::NotFound)?;
        let requeued = dead_letters::requeue(&state.services, &op.caller, &[id]).await?;
        if requeued == 0 {
            return Err(ApiError::NotFound);
        }
        tracing::info!("dead letter requeued from the UI");
        problems_page(op, &state, Some(op.lang.texts().requeued)).await
    }
    .await;
    respond(op, result)
}
