//! How a call to Prom is named for metrics: its endpoint and its outcome, each from a
//! closed set. The endpoint is recognised from the path promsync built (ids become
//! `{id}`), never copied from it, so neither an order id nor a shop's URL prefix becomes
//! a label.

use super::PromError;

/// Called once per call sent to Prom, with [`endpoint`], [`outcome`] and the time it took.
pub type CallObserver = fn(&'static str, &'static str, std::time::Duration);

/// The endpoint of a Prom API path (`…/api/v1/orders/123` → `orders/{id}`).
pub fn endpoint(path: &str) -> &'static str {
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let last = segments.next().unwrap_or_default();
    let parent = segments.next().unwrap_or_default();
    let is_id = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    match (parent, last) {
        ("orders", "list") => "orders/list",
        ("orders", "set_status") => "orders/set_status",
        ("orders", _) if is_id => "orders/{id}",
        ("products", _) if is_id => "products/{id}",
        ("delivery", "save_declaration_id") => "delivery/save_declaration_id",
        ("order_status_options", "list") => "order_status_options/list",
        _ => "other",
    }
}

/// `ok`, or the kind of failure.
pub fn outcome<T>(result: &Result<T, PromError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => match e {
            PromError::Unauthorized(_) => "unauthorized",
            PromError::NotFound => "not_found",
            PromError::RateLimited { .. } => "rate_limited",
            PromError::Server(_) => "server_error",
            PromError::Api(_) => "api_error",
            PromError::Transport(_) => "transport",
            PromError::Malformed(_) => "malformed",
            PromError::Redirect(_) => "redirect",
            PromError::Forbidden(_) => "forbidden",
            PromError::Invalid(_) => "invalid",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_promsync_calls_has_its_endpoint_and_ids_never_become_labels() {
        let cases = [
            ("/api/v1/orders/list", "orders/list"),
            ("/prefix/api/v1/orders/set_status", "orders/set_status"),
            ("/api/v1/orders/338390710", "orders/{id}"),
            ("/api/v1/products/1234/", "products/{id}"),
            (
                "/api/v1/delivery/save_declaration_id",
                "delivery/save_declaration_id",
            ),
            (
                "/api/v1/order_status_options/list",
                "order_status_options/list",
            ),
            ("/api/v1/orders/12a", "other"),
            ("/api/v1/orders/", "other"),
            ("/api/v1/clients/5", "other"),
            ("", "other"),
        ];
        for (path, expected) in cases {
            assert_eq!(endpoint(path), expected, "{path}");
        }
    }

    #[test]
    fn outcomes_name_the_kind_of_failure() {
        assert_eq!(outcome(&Ok::<(), PromError>(())), "ok");
        assert_eq!(
            outcome::<()>(&Err(PromError::Unauthorized(401))),
            "unauthorized"
        );
        assert_eq!(outcome::<()>(&Err(PromError::Server(502))), "server_error");
        assert_eq!(
            outcome::<()>(&Err(PromError::Api("<script>".into()))),
            "api_error"
        );
    }
}
