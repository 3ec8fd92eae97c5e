//! `POST /orders/set_status` bodies checked the way Prom checks them, so a publisher that
//! passes against the simulator sends what Prom accepts.
//!
//! Both failures answer Prom's only documented error shape, `{"error": …}`
//! (docs/PROM_API.md): a malformed request (not JSON, no ids, an unknown status or
//! reason) with HTTP 400, since Prom's API description attaches that shape to the
//! non-200 answers; a well-formed request Prom refuses (cancellation without a reason, a
//! reason that needs a text without one, an unknown custom status) with HTTP 200, as
//! Prom answers logical errors.
//!
//! Statuses and reasons are the ones Prom documents: every status of its own may be set,
//! `draft` included, and the reasons are Prom's example list plus the two a newer client
//! sends (`payment_not_received`, `no_product_variants`), since which list is current is
//! not known and refusing a reason Prom may accept would be an invention.

use serde_json::Value;

use super::generate::CUSTOM_STATUSES;

/// Statuses a seller may set through the API (Prom's example lists all six).
const SETTABLE: [&str; 6] = [
    "pending",
    "received",
    "delivered",
    "canceled",
    "draft",
    "paid",
];
const REASONS: [&str; 10] = [
    "not_available",
    "price_changed",
    "buyers_request",
    "not_enough_fields",
    "duplicate",
    "invalid_phone_number",
    "less_than_minimal_price",
    "another",
    "payment_not_received",
    "no_product_variants",
];
/// Reasons Prom refuses without a `cancellation_text`.
const REASONS_NEEDING_TEXT: [&str; 3] = ["price_changed", "not_enough_fields", "another"];

/// A valid status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub ids: Vec<i64>,
    /// `received`, `canceled`, … or `custom-<id>`.
    pub status: String,
    pub cancellation_reason: Option<String>,
    pub cancellation_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetStatusError {
    /// HTTP 400 `{"error": …}`.
    #[error("{0}")]
    BadRequest(String),
    /// HTTP 200 `{"error": …}`.
    #[error("{0}")]
    Refused(String),
}

/// [`validate_set_status_for`] a shop with the default custom statuses
/// ([`CUSTOM_STATUSES`]).
pub fn validate_set_status(body: &Value) -> Result<StatusChange, SetStatusError> {
    let ids: Vec<i64> = CUSTOM_STATUSES.iter().map(|(id, _)| *id).collect();
    validate_set_status_for(body, &ids)
}

/// `custom_statuses`: the ids of the shop's own statuses, the only custom ones accepted
/// (Prom refuses a custom status the shop does not have).
pub fn validate_set_status_for(
    body: &Value,
    custom_statuses: &[i64],
) -> Result<StatusChange, SetStatusError> {
    let bad = |m: &str| Err(SetStatusError::BadRequest(m.to_owned()));
    let refused = |m: String| Err(SetStatusError::Refused(m));
    let Some(object) = body.as_object() else {
        return bad("request body must be a JSON object");
    };
    let ids: Vec<i64> = match object.get("ids").and_then(Value::as_array) {
        Some(ids) if !ids.is_empty() => {
            match ids.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
                Some(ids) if ids.iter().all(|id| *id > 0) => ids,
                _ => return bad("ids must be positive integers"),
            }
        }
        _ => return bad("ids is required: a non-empty list of order ids"),
    };
    let status = match (object.get("status"), object.get("custom_status_id")) {
        (Some(_), Some(_)) => return bad("send either status or custom_status_id, not both"),
        (None, None) => return bad("status or custom_status_id is required"),
        (None, Some(custom)) => {
            let Some(id) = custom.as_i64() else {
                return bad("custom_status_id must be an integer");
            };
            if !custom_statuses.contains(&id) {
                return refused(format!("Unknown custom status {id}"));
            }
            return Ok(StatusChange {
                ids,
                status: format!("custom-{id}"),
                cancellation_reason: None,
                cancellation_text: None,
            });
        }
        (Some(status), None) => match status.as_str() {
            Some(s) if SETTABLE.contains(&s) => s.to_owned(),
            Some(s) => return bad(&format!("Invalid status: {s}")),
            None => return bad("status must be a string"),
        },
    };
    if status != "canceled" {
        return Ok(StatusChange {
            ids,
            status,
            cancellation_reason: None,
            cancellation_text: None,
        });
    }
    let reason = match object.get("cancellation_reason") {
        None | Some(Value::Null) => {
            return refused("cancellation_reason is required to cancel an order".into())
        }
        Some(Value::String(r)) if REASONS.contains(&r.as_str()) => r.clone(),
        Some(other) => return bad(&format!("Invalid cancellation_reason: {other}")),
    };
    let text = object
        .get("cancellation_text")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if text.is_none() && REASONS_NEEDING_TEXT.contains(&reason.as_str()) {
        return refused(format!(
            "cancellation_text is required for cancellation_reason {reason}"
        ));
    }
    Ok(StatusChange {
        ids,
        status,
        cancellation_reason: Some(reason),
        cancellation_text: text,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(body: Value) -> String {
        match validate_set_status(&body) {
            Err(SetStatusError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn bad_request(body: Value) -> String {
        match validate_set_status(&body) {
            Err(SetStatusError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_status_change_is_accepted() {
        let change = validate_set_status(&json!({"status": "received", "ids": [1, 2]})).unwrap();
        assert_eq!(change.ids, vec![1, 2]);
        assert_eq!(change.status, "received");
    }

    #[test]
    fn cancellation_with_reason_another_and_a_text_is_accepted() {
        let change = validate_set_status(&json!({
            "status": "canceled", "ids": [1],
            "cancellation_reason": "another", "cancellation_text": "Немає в наявності",
        }))
        .unwrap();
        assert_eq!(change.cancellation_reason.as_deref(), Some("another"));
        assert_eq!(
            change.cancellation_text.as_deref(),
            Some("Немає в наявності")
        );
    }

    #[test]
    fn cancellation_needing_a_text_without_one_is_refused_like_prom() {
        for text in [json!(null), json!(""), json!("   ")] {
            let m = refused(json!({
                "status": "canceled", "ids": [1],
                "cancellation_reason": "another", "cancellation_text": text,
            }));
            assert!(m.contains("cancellation_text"), "{m}");
        }
        // `duplicate` needs no text.
        assert!(validate_set_status(&json!({
            "status": "canceled", "ids": [1], "cancellation_reason": "duplicate"
        }))
        .is_ok());
    }

    #[test]
    fn cancellation_without_a_reason_is_refused() {
        let m = refused(json!({"status": "canceled", "ids": [1]}));
        assert!(m.contains("cancellation_reason"), "{m}");
    }

    #[test]
    fn unknown_statuses_and_reasons_are_bad_requests() {
        assert!(bad_request(json!({"status": "shipped", "ids": [1]})).contains("shipped"));
        bad_request(json!({"status": "cancelled", "ids": [1]}));
        bad_request(json!({
            "status": "canceled", "ids": [1], "cancellation_reason": "bored"
        }));
    }

    #[test]
    fn custom_statuses_go_by_id_and_must_exist() {
        let change = validate_set_status(&json!({"custom_status_id": 137639, "ids": [1]})).unwrap();
        assert_eq!(change.status, "custom-137639");
        refused(json!({"custom_status_id": 999, "ids": [1]}));
        bad_request(json!({"custom_status_id": 137639, "status": "received", "ids": [1]}));
    }

    #[test]
    fn a_custom_status_is_accepted_only_if_the_shop_has_it() {
        let body = json!({"custom_status_id": 555, "ids": [1]});

        let has_it = validate_set_status_for(&body, &[555]);
        let lacks_it = validate_set_status_for(&body, &[137639]);

        assert_eq!(has_it.unwrap().status, "custom-555");
        assert!(matches!(lacks_it, Err(SetStatusError::Refused(m)) if m.contains("555")));
    }

    #[test]
    fn ids_are_required_and_must_be_positive_integers() {
        bad_request(json!({"status": "received"}));
        bad_request(json!({"status": "received", "ids": []}));
        bad_request(json!({"status": "received", "ids": ["1"]}));
        bad_request(json!({"status": "received", "ids": [0]}));
        bad_request(json!("received"));
    }

    #[test]
    fn every_status_prom_documents_can_be_set_draft_included() {
        for status in SETTABLE {
            let body = json!({
                "status": status, "ids": [1], "cancellation_reason": "duplicate",
            });
            assert_eq!(validate_set_status(&body).unwrap().status, status);
        }
    }

    #[test]
    fn the_reasons_a_newer_client_sends_are_accepted_without_a_text() {
        for reason in ["payment_not_received", "no_product_variants"] {
            let change = validate_set_status(&json!({
                "status": "canceled", "ids": [1], "cancellation_reason": reason,
            }))
            .unwrap();
            assert_eq!(change.cancellation_reason.as_deref(), Some(reason));
        }
    }
}
