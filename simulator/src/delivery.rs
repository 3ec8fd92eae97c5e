//! `POST /delivery/save_declaration_id` as Prom answers it (docs/PROM_API.md, 'Delivery'):
//! the waybill number (`declaration_id`) of a carrier (`delivery_type`) put on an order,
//! where it shows as `delivery_provider_data.declaration_number`.
//!
//! The error shapes are `set_status`'s: a malformed body (not an object, a field missing
//! or of the wrong type) is HTTP 400 `{"error": …}`; a well-formed request Prom refuses is
//! HTTP 200 `{"status": "error", "message": …}` — an unknown order, a carrier it does not
//! know, a number that is not one, or the same number again (Prom's own words, observed
//! live: "Этот ЭН уже добавлен к данному заказу").

use serde_json::{json, Value};

use super::validate::SetStatusError as RequestError;

/// Carriers Prom takes here (`justin` has since closed, but clients still send it).
const CARRIERS: [&str; 4] = ["nova_poshta", "ukrposhta", "meest", "justin"];
/// Prom's refusal of a number the order already carries.
pub const ALREADY_ADDED: &str = "Этот ЭН уже добавлен к данному заказу";
const MAX_NUMBER_LEN: usize = 32;

/// A well-formed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    pub order_id: i64,
    pub number: String,
    pub carrier: String,
}

pub fn validate_declaration(body: &Value) -> Result<Declaration, RequestError> {
    let bad = |m: &str| Err(RequestError::BadRequest(m.to_owned()));
    let Some(object) = body.as_object() else {
        return bad("request body must be a JSON object");
    };
    let Some(order_id) = object
        .get("order_id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
    else {
        return bad("order_id is required: a positive integer");
    };
    let text = |field: &str| object.get(field).and_then(Value::as_str);
    let (Some(number), Some(carrier)) = (text("declaration_id"), text("delivery_type")) else {
        return bad("declaration_id and delivery_type are required strings");
    };
    if !CARRIERS.contains(&carrier) {
        return Err(RequestError::Refused(format!(
            "Unknown delivery_type: {carrier}"
        )));
    }
    let plausible = !number.is_empty()
        && number.len() <= MAX_NUMBER_LEN
        && number.bytes().all(|b| b.is_ascii_alphanumeric());
    if !plausible {
        return Err(RequestError::Refused("Invalid declaration_id".into()));
    }
    Ok(Declaration {
        order_id,
        number: number.to_owned(),
        carrier: carrier.to_owned(),
    })
}

/// Puts the waybill on `order`; `Err` with Prom's message when it already carries it.
pub fn apply(order: &mut Value, declaration: &Declaration) -> Result<(), String> {
    let data = &mut order["delivery_provider_data"];
    if data["declaration_number"].as_str() == Some(declaration.number.as_str()) {
        return Err(ALREADY_ADDED.to_owned());
    }
    if !data.is_object() {
        *data = json!({
            "provider": declaration.carrier,
            "type": null,
            "sender_warehouse_id": null,
            "recipient_warehouse_id": null,
            "unified_status": null,
        });
    }
    data["declaration_number"] = json!(declaration.number);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(number: &str) -> Value {
        json!({"order_id": 7, "declaration_id": number, "delivery_type": "nova_poshta"})
    }

    #[test]
    fn malformed_bodies_are_400s_and_refusals_200s() {
        assert!(matches!(
            validate_declaration(&json!({"order_id": 7})),
            Err(RequestError::BadRequest(_))
        ));
        assert!(matches!(
            validate_declaration(
                &json!({"order_id": "7", "declaration_id": "1", "delivery_type": "meest"})
            ),
            Err(RequestError::BadRequest(_))
        ));
        assert!(matches!(
            validate_declaration(
                &json!({"order_id": 7, "declaration_id": "12345678", "delivery_type": "dhl"})
            ),
            Err(RequestError::Refused(_))
        ));
        assert!(matches!(
            validate_declaration(&request("20 45")),
            Err(RequestError::Refused(_))
        ));
    }

    #[test]
    fn the_number_shows_on_the_order_and_the_same_number_again_is_refused() {
        let mut order = json!({"id": 7, "delivery_provider_data": null});
        let declaration = validate_declaration(&request("20450000000001")).unwrap();

        apply(&mut order, &declaration).unwrap();
        let again = apply(&mut order, &declaration);

        assert_eq!(
            order["delivery_provider_data"]["declaration_number"],
            "20450000000001"
        );
        assert_eq!(order["delivery_provider_data"]["provider"], "nova_poshta");
        assert_eq!(again, Err(ALREADY_ADDED.to_owned()));
    }
}
