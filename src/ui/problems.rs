//! Sync problems: notifications the importer rejected (with their reasons, from the sync
//! log) and dead letters of both lanes that belong to the employee's shops, each with a
//! requeue button (`manage_integrations`). Dead letters are read and requeued through
//! the broker trait, as `promsync dlq` does.

use std::collections::HashSet;

use actix_web::{http::StatusCode, web, HttpResponse};
use maud::html;

use super::{
    orders::log_table,
    page::{button, csrf, frame, html_response, lacks, notice, respond},
    session::{Operator, Posted},
};
use crate::{
    api::{auth::Caller, shops, sync_log},
    broker::{DeadLetter, Lane},
    domain::{Outcome, Permission},
    error::ApiError,
    startup::AppState,
};

const REJECTED_SHOWN: u64 = 100;

/// The dead letters of the caller's shops, per lane. A letter without a shop (which no
/// account can claim) is left to `promsync dlq`.
pub async fn account_dead_letters(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<(Lane, DeadLetter)>, ApiError> {
    let shops: HashSet<i64> = shops::shop_names(state, caller)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut letters = Vec::new();
    for lane in Lane::ALL {
        for letter in state.broker.dead_letters(lane).await? {
            if letter.shop_id.is_some_and(|id| shops.contains(&id)) {
                letters.push((lane, letter));
            }
        }
    }
    Ok(letters)
}

async fn problems_page(
    op: &Operator,
    state: &AppState,
    done: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let t = op.lang.texts();
    let rejected = sync_log::entries(
        state,
        op.caller.account_id,
        None,
        Some(Outcome::Rejected),
        REJECTED_SHOWN,
    )
    .await?;
    let letters = account_dead_letters(state, &op.caller).await?;
    let refused = lacks(op, Permission::ManageIntegrations);
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
                    thead { tr { th { (t.col_lane) } th { (t.col_order) } th { (t.col_attempts) } th { (t.col_reason) } th {} } }
                    tbody {
                        @for (lane, letter) in &letters {
                            tr {
                                td { (lane.as_str()) }
                                td { (letter.order_id.map(|id| id.to_string()).unwrap_or_default()) }
                                td.num { (letter.attempts) }
                                td { (letter.last_error.as_deref().unwrap_or_default()) }
                                td {
                                    form method="post" action="/ui/problems/requeue" {
                                        (csrf(op))
                                        input type="hidden" name="lane" value=(lane.as_str());
                                        input type="hidden" name="id" value=(letter.id);
                                        (button(t.requeue, refused, None))
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
/// the employee's account.
#[tracing::instrument(skip_all, fields(account_id = posted.op.caller.account_id))]
pub async fn requeue(posted: Posted, state: web::Data<AppState>) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        op.caller
            .require(Permission::ManageIntegrations, "requeueing a dead letter")?;
        let lane: Lane = posted
            .fields
            .get("lane")
            .unwrap_or_default()
            .parse()
            .map_err(ApiError::BadRequest)?;
        let id = posted.fields.get("id").unwrap_or_default().to_owned();
        let known = account_dead_letters(&state, &op.caller)
            .await?
            .into_iter()
            .any(|(l, letter)| l == lane && letter.id == id);
        if !known {
            return Err(ApiError::NotFound);
        }
        state
            .broker
            .requeue_dead(lane, Some(std::slice::from_ref(&id)))
            .await?;
        tracing::info!(lane = lane.as_str(), "dead letter requeued from the UI");
        problems_page(op, &state, Some(op.lang.texts().requeued)).await
    }
    .await;
    respond(op, result)
}
