//! `GET /order_status_options/list`: the order statuses a shop has on Prom, Prom's own
//! (`pending`, `received`, …) and the seller's (`custom-<id>`), each with the title Prom
//! shows in the shop's language (see PROM_API.md, 'Statuses').
//!
//! The answer is hostile input like any other: it is read up to a size cap, a status
//! whose code is not one of Prom's is skipped, a listing longer than any shop has is
//! refused, and titles are flattened to one line without control or bidirectional
//! formatting characters and cut short, because they end up on operators' pages.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{api_url, PromClient, PromCredentials, PromError};
use crate::{domain::excerpt, prom::order::PromStatus};

/// Longest answer read. A shop's statuses fit in a few kilobytes.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Most statuses one answer may list; a longer listing is not a shop's.
const MAX_OPTIONS: usize = 200;
/// Longest status title kept, in characters.
pub const MAX_STATUS_TITLE_CHARS: usize = 100;

/// One order status a shop has on Prom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromStatusOption {
    pub status: PromStatus,
    /// One line, at most [`MAX_STATUS_TITLE_CHARS`]; the code when Prom gave none.
    pub title: String,
}

#[derive(Deserialize)]
struct OptionList {
    order_status_options: Vec<Value>,
}

impl PromClient {
    /// `GET /order_status_options/list`: the shop's statuses in Prom's order, each code
    /// once.
    pub async fn list_status_options(
        &self,
        creds: &PromCredentials,
    ) -> Result<Vec<PromStatusOption>, PromError> {
        let url = api_url(&creds.base_url, &["order_status_options", "list"])?;
        let list: OptionList = self
            .call_bounded(
                creds,
                Method::GET,
                url,
                None::<&()>,
                "JSON with order_status_options",
                Some(MAX_ANSWER_BYTES),
            )
            .await?;
        options_of(list.order_status_options)
    }
}

/// The statuses of one answer: the readable ones, each code once (the first wins).
fn options_of(entries: Vec<Value>) -> Result<Vec<PromStatusOption>, PromError> {
    if entries.len() > MAX_OPTIONS {
        return Err(PromError::Malformed(format!(
            "Prom listed {} order statuses; expected at most {MAX_OPTIONS}",
            entries.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut options = Vec::with_capacity(entries.len());
    let mut unreadable = 0_usize;
    for entry in &entries {
        let Some(status) = entry
            .get("name")
            .and_then(Value::as_str)
            .and_then(|name| name.parse::<PromStatus>().ok())
        else {
            unreadable += 1;
            continue;
        };
        if !seen.insert(status) {
            continue;
        }
        let title = entry
            .get("title")
            .and_then(Value::as_str)
            .map(status_title)
            .filter(|title| !title.is_empty())
            .unwrap_or_else(|| status.to_string());
        options.push(PromStatusOption { status, title });
    }
    if unreadable > 0 {
        tracing::debug!(
            unreadable,
            "Prom listed order statuses that are not Prom status codes"
        );
    }
    Ok(options)
}

/// A title as operators may see it: one line, runs of blanks as one space, no control or
/// invisible direction-changing characters, at most [`MAX_STATUS_TITLE_CHARS`].
pub fn status_title(raw: &str) -> String {
    let visible: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || is_invisible_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let one_line = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    excerpt(&one_line, MAX_STATUS_TITLE_CHARS)
}

/// Zero-width and bidirectional formatting characters: invisible, and able to make a
/// title read as something else next to other text.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::prom::client::test_support::{client, creds};

    /// What the client makes of Prom answering `template` (once, to this call only).
    async fn listed_from(template: ResponseTemplate) -> Result<Vec<PromStatusOption>, PromError> {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/order_status_options/list"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .respond_with(template)
            .expect(1)
            .mount(&server)
            .await;
        client(&server).list_status_options(&creds(&server)).await
    }

    #[tokio::test]
    async fn the_shop_s_statuses_come_with_their_titles_and_custom_ones_by_id() {
        // Arrange
        let prom = ResponseTemplate::new(200).set_body_json(json!({
            "order_status_options": [
                {"id": 0, "name": "pending", "title": "Нове"},
                {"id": 1, "name": "received", "title": "Прийнято"},
                {"id": 137639, "name": "custom-137639", "title": "Підтверджено"},
            ]
        }));

        // Act
        let options = listed_from(prom).await.unwrap();

        // Assert
        assert_eq!(
            options,
            vec![
                PromStatusOption {
                    status: PromStatus::Pending,
                    title: "Нове".into()
                },
                PromStatusOption {
                    status: PromStatus::Received,
                    title: "Прийнято".into()
                },
                PromStatusOption {
                    status: PromStatus::Custom(137639),
                    title: "Підтверджено".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn odd_entries_are_skipped_and_odd_titles_flattened_and_cut_short() {
        // Arrange
        let long = "Довга назва ".repeat(50);
        let prom = ResponseTemplate::new(200).set_body_json(json!({
            "order_status_options": [
                {"name": "custom-7", "title": "Line one\nline\ttwo\u{202E}\u{0}  end"},
                {"name": "custom-8", "title": long},
                {"name": "custom-9", "title": "  \n "},
                {"name": "custom-10"},
                {"name": "custom-7", "title": "second of the same code"},
                {"name": "<script>", "title": "x"},
                {"name": "custom-0", "title": "x"},
                {"name": 5, "title": "x"},
                "not an object",
                null,
            ]
        }));

        // Act
        let options = listed_from(prom).await.unwrap();

        // Assert
        let titles: Vec<(String, String)> = options
            .iter()
            .map(|o| (o.status.to_string(), o.title.clone()))
            .collect();
        assert_eq!(titles.len(), 4, "{titles:?}");
        assert_eq!(
            titles[0],
            ("custom-7".into(), "Line one line two end".into())
        );
        assert_eq!(titles[1].1.chars().count(), MAX_STATUS_TITLE_CHARS + 1);
        assert!(titles[1].1.ends_with('…'));
        assert_eq!(titles[2], ("custom-9".into(), "custom-9".into()));
        assert_eq!(titles[3], ("custom-10".into(), "custom-10".into()));
    }

    #[tokio::test]
    async fn an_answer_over_the_size_cap_is_refused_unread() {
        // Arrange: one title of a megabyte.
        let prom = ResponseTemplate::new(200).set_body_json(json!({
            "order_status_options": [{"name": "custom-1", "title": "x".repeat(1 << 20)}]
        }));

        // Act
        let e = listed_from(prom).await.unwrap_err();

        // Assert
        assert!(
            matches!(&e, PromError::Malformed(m) if m.contains("at most 262144 bytes")),
            "{e:?}"
        );
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn a_listing_longer_than_any_shop_s_is_refused() {
        let entries: Vec<Value> = (1..=MAX_OPTIONS + 1)
            .map(|i| json!({"name": format!("custom-{i}"), "title": "t"}))
            .collect();
        let prom =
            ResponseTemplate::new(200).set_body_json(json!({ "order_status_options": entries }));

        let e = listed_from(prom).await.unwrap_err();

        assert!(matches!(e, PromError::Malformed(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_refusal_inside_a_200_or_a_missing_list_is_a_failure() {
        for (body, want_api) in [
            (json!({"error": "Access denied"}), true),
            (
                json!({"order_status_options": [], "status": "error", "message": "No"}),
                true,
            ),
            (json!({"statuses": []}), false),
        ] {
            let prom = ResponseTemplate::new(200).set_body_json(&body);

            let e = listed_from(prom).await.unwrap_err();

            assert_eq!(matches!(e, PromError::Api(_)), want_api, "{body}: {e:?}");
            assert!(!e.is_transient());
        }
    }

    #[tokio::test]
    async fn a_large_error_page_still_reads_as_its_status() {
        let page = ResponseTemplate::new(503).set_body_string("<html>".repeat(100_000));

        let e = listed_from(page).await.unwrap_err();

        assert_eq!(e, PromError::Server(503));
    }

    proptest! {
        #[test]
        fn a_title_is_one_visible_line_of_bounded_length_whatever_prom_sends(raw in "(?s).{0,300}") {
            let title = status_title(&raw);
            prop_assert!(title.chars().count() <= MAX_STATUS_TITLE_CHARS + 1);
            prop_assert!(!title.chars().any(|c| c.is_control() || is_invisible_format(c)));
            prop_assert_eq!(title.trim(), title.as_str());
            prop_assert!(!title.contains("  "));
        }

        #[test]
        fn any_listing_gives_known_codes_once_each_or_a_refusal(
            names in proptest::collection::vec("(custom-[1-9][0-9]{0,3}|custom-0|pending|paid|x|)", 0..30),
            titles in proptest::collection::vec(".{0,20}", 30),
        ) {
            let entries: Vec<Value> = names
                .iter()
                .zip(&titles)
                .map(|(name, title)| json!({"name": name, "title": title}))
                .collect();
            let options = options_of(entries).unwrap();
            let codes: HashSet<String> = options.iter().map(|o| o.status.to_string()).collect();
            prop_assert_eq!(codes.len(), options.len());
            prop_assert!(options.iter().all(|o| names.contains(&o.status.to_string())));
            prop_assert!(options.iter().all(|o| !o.title.is_empty()));
        }
    }
}
