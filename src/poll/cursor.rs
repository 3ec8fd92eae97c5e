//! The pure rules of a sweep, kept apart from HTTP, broker and database so they can be
//! tested exhaustively: walking Prom's `last_id` cursor with the boundary deduped, which
//! listed orders are published, where a sweep's window starts and how far the watermark
//! may advance afterwards without ever skipping an order.

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::prom::order::parse_prom_datetime;

/// Walks `GET /orders/list` pages of one sweep. Prom lists by descending id and describes
/// `last_id` as inclusive ("no higher than"; no live test has settled it), so the boundary
/// order comes twice: ids already seen in this sweep are dropped, and a page with nothing
/// new ends the sweep. Right either way as long as a page holds at least two orders.
#[derive(Debug, Default)]
pub struct Cursor {
    last_id: Option<i64>,
    seen: HashSet<i64>,
    done: bool,
}

impl Cursor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `last_id` of the next page request (`None` for the first page).
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    /// Whether the last page brought nothing new: no further page is requested.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes one page's order ids in Prom's order and returns the positions of the orders
    /// not seen before in this sweep; moves the cursor to the page's smallest id.
    pub fn accept(&mut self, ids: &[i64]) -> Vec<usize> {
        let fresh: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| self.seen.insert(**id))
            .map(|(i, _)| i)
            .collect();
        if fresh.is_empty() {
            // Empty, or only the boundary order again.
            self.done = true;
            return fresh;
        }
        let lowest = ids.iter().copied().min().expect("a page with fresh ids");
        match self.last_id {
            // A cursor that does not move down would fetch the same page forever (a Prom
            // that ignores `last_id`); what was new is still published, then stop.
            Some(previous) if lowest >= previous => self.done = true,
            _ => self.last_id = Some(lowest),
        }
        fresh
    }
}

/// The fields of a listed order the poller itself needs; the document travels unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listed {
    pub id: i64,
    /// Not required by Prom's schema; [`Listed::version`] falls back to `date_created`.
    #[serde(default)]
    pub date_modified: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What the poller does with one listed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Publish,
    /// Drafts are never imported (ARCHITECTURE.md, 'Drafts are not imported'); publishing
    /// them would only fill the sync log.
    Draft,
    /// Created before the shop's import horizon (connection time minus the backfill).
    BeforeHorizon,
}

impl Listed {
    pub fn verdict(&self, horizon: DateTime<Utc>) -> Verdict {
        if self.status.as_deref() == Some("draft") {
            return Verdict::Draft;
        }
        // An unreadable creation date is published anyway: the importer records why it
        // rejects the order, which an operator can see; a silent skip they cannot.
        match self.date_created.as_deref().map(parse_prom_datetime) {
            Some(Ok(created)) if created < horizon => Verdict::BeforeHorizon,
            _ => Verdict::Publish,
        }
    }

    /// The order's version as Prom wrote it, for its event id and the watermark:
    /// `date_modified`, else `date_created` (what the importer compares versions by too),
    /// so an order Prom lists without `date_modified` is still published, under an id
    /// that stays the same until Prom modifies it. `None` without either.
    pub fn version(&self) -> Option<&str> {
        [&self.date_modified, &self.date_created]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|d| !d.trim().is_empty())
    }

    pub fn modified_at(&self) -> Option<DateTime<Utc>> {
        parse_prom_datetime(self.version()?).ok()
    }
}

/// Where one sweep looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `last_modified_from` of every page.
    pub from: DateTime<Utc>,
    /// Orders created before this are never published (new orders only, like RO App).
    pub horizon: DateTime<Utc>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The window of a sweep: from the watermark minus the overlap; a shop never swept
/// starts at its horizon (connection time minus the backfill), minus the overlap too,
/// because the connection time is our clock and `date_modified` is Prom's.
pub fn window(
    watermark: Option<DateTime<Utc>>,
    connected_at: DateTime<Utc>,
    backfill: Duration,
    overlap: Duration,
) -> Window {
    let horizon = connected_at - chrono(backfill);
    Window {
        from: watermark.unwrap_or(horizon) - chrono(overlap),
        horizon,
    }
}

/// The watermark after a sweep in which every page was published and confirmed.
///
/// It is built from Prom's own `date_modified` values, never from our clock, so clock
/// skew between us and Prom cannot skip an order. Orders created or modified while the
/// sweep walked the cursor can be missed by it, but their `date_modified` is at least the
/// time of the first page; the newest date seen is at most that time plus the sweep's
/// duration. So the watermark is the newest date seen, pulled back by however long the
/// sweep took beyond the overlap, and the next window (watermark minus overlap) still
/// starts before anything this sweep could have missed. It never moves backwards.
pub fn next_watermark(
    previous: Option<DateTime<Utc>>,
    horizon: DateTime<Utc>,
    newest_seen: Option<DateTime<Utc>>,
    sweep_took: Duration,
    overlap: Duration,
) -> DateTime<Utc> {
    let base = previous.unwrap_or(horizon);
    match newest_seen {
        Some(newest) => base.max(newest - chrono(sweep_took.saturating_sub(overlap))),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_prom_datetime(s).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_cursor_walks_down_and_dedupes_an_inclusive_boundary() {
        let mut cursor = Cursor::new();
        assert_eq!(cursor.last_id(), None);

        assert_eq!(cursor.accept(&[30, 29, 28]), vec![0, 1, 2]);
        assert_eq!(cursor.last_id(), Some(28));
        // Prom repeats the boundary order: it is dropped, the rest is new.
        assert_eq!(cursor.accept(&[28, 27, 26]), vec![1, 2]);
        assert_eq!(cursor.last_id(), Some(26));
        assert!(!cursor.is_done());
        // Only the boundary: the end.
        assert_eq!(cursor.accept(&[26]), Vec::<usize>::new());
        assert!(cursor.is_done());
    }

    #[test]
    fn the_cursor_stops_on_an_empty_page_with_an_exclusive_boundary() {
        let mut cursor = Cursor::new();
        assert_eq!(cursor.accept(&[5, 4]), vec![0, 1]);
        assert_eq!(cursor.accept(&[3, 2]), vec![0, 1]);
        assert_eq!(cursor.last_id(), Some(2));
        assert!(cursor.accept(&[]).is_empty());
        assert!(cursor.is_done());
    }

    #[test]
    fn a_prom_that_ignores_the_cursor_cannot_loop_the_sweep_forever() {
        let mut cursor = Cursor::new();
        assert_eq!(cursor.accept(&[9, 8]), vec![0, 1]);
        // The same page again, with one order that appeared meanwhile on top.
        assert_eq!(cursor.accept(&[10, 9, 8]), vec![0]);
        assert!(cursor.is_done());
    }

    /// Every order a sweep visits when Prom lists `ids` by descending id, `limit` per page,
    /// with `last_id` inclusive ("no higher than"). Panics on a sweep that does not end.
    fn visited_with_an_inclusive_last_id(ids: &[i64], limit: usize) -> Vec<i64> {
        let mut cursor = Cursor::new();
        let mut visited = Vec::new();
        for page in 0.. {
            assert!(page <= ids.len() + 1, "the sweep loops at pages of {limit}");
            if cursor.is_done() {
                break;
            }
            let page: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| cursor.last_id().is_none_or(|last| *id <= last))
                .take(limit)
                .collect();
            visited.extend(cursor.accept(&page).into_iter().map(|i| page[i]));
        }
        visited
    }

    #[test]
    fn with_an_inclusive_last_id_pages_of_two_visit_every_order() {
        // Arrange
        let ids: Vec<i64> = (1..=7).rev().collect();

        // Act
        let by_two = visited_with_an_inclusive_last_id(&ids, 2);
        let by_one = visited_with_an_inclusive_last_id(&ids, 1);

        // Assert: pages of one stop at the first boundary, which is why `poll_page_size`
        // is at least 2.
        assert_eq!(by_two, ids);
        assert_eq!(by_one, [7]);
    }

    proptest::proptest! {
        #[test]
        fn at_any_page_size_from_two_an_inclusive_last_id_visits_every_order_once(
            ids in proptest::collection::btree_set(1_i64..1_000_000, 0..60),
            limit in 2_usize..=120,
        ) {
            // Arrange
            let ids: Vec<i64> = ids.into_iter().rev().collect();

            // Act
            let visited = visited_with_an_inclusive_last_id(&ids, limit);

            // Assert
            proptest::prop_assert_eq!(visited, ids);
        }
    }

    #[test]
    fn an_order_listed_twice_on_one_page_is_published_once() {
        let mut cursor = Cursor::new();
        assert_eq!(cursor.accept(&[7, 7, 6]), vec![0, 2]);
    }

    fn listed(status: &str, created: &str) -> Listed {
        Listed {
            id: 1,
            date_modified: Some("2025-04-07T07:00:00+00:00".into()),
            date_created: Some(created.into()),
            status: Some(status.into()),
        }
    }

    #[test]
    fn drafts_and_orders_from_before_the_horizon_are_not_published() {
        let horizon = at("2025-04-07T06:00:00+00:00");
        assert_eq!(
            listed("pending", "2025-04-07T06:00:00.000001+00:00").verdict(horizon),
            Verdict::Publish
        );
        assert_eq!(
            listed("paid", "2025-04-07T06:00:00+00:00").verdict(horizon),
            Verdict::Publish
        );
        assert_eq!(
            listed("draft", "2025-04-07T06:30:00+00:00").verdict(horizon),
            Verdict::Draft
        );
        assert_eq!(
            listed("pending", "2025-04-07T05:59:59.999+00:00").verdict(horizon),
            Verdict::BeforeHorizon
        );
        assert_eq!(
            listed("pending", "yesterday").verdict(horizon),
            Verdict::Publish
        );
    }

    #[test]
    fn a_listed_order_reads_its_id_and_dates_from_the_prom_document() {
        let doc = serde_json::json!({
            "id": 338390710_i64, "date_created": "2025-04-07T06:46:42.728888+00:00",
            "date_modified": "2025-04-07T06:46:43.570150+00:00", "status": "pending",
            "products": []
        });
        let l = Listed::deserialize(&doc).unwrap();
        assert_eq!(l.id, 338390710);
        assert_eq!(
            l.modified_at(),
            Some(at("2025-04-07T06:46:43.570150+00:00"))
        );
        assert!(Listed::deserialize(&serde_json::json!({"date_created": "x"})).is_err());
        assert_eq!(
            Listed::deserialize(&serde_json::json!({"id": 1}))
                .unwrap()
                .version(),
            None
        );
    }

    #[test]
    fn a_listed_order_without_date_modified_is_versioned_by_its_creation_date() {
        // Arrange
        let created = "2025-04-07T06:46:42.728888+00:00";
        let doc = serde_json::json!({"id": 7, "date_created": created, "status": "pending"});

        // Act
        let l = Listed::deserialize(&doc).unwrap();

        // Assert
        assert_eq!(l.version(), Some(created));
        assert_eq!(l.modified_at(), Some(at(created)));
    }

    #[test]
    fn the_window_starts_an_overlap_before_the_watermark_or_the_horizon() {
        let connected = at("2025-04-07T06:00:00+00:00");
        let w = window(None, connected, secs(0), secs(300));
        assert_eq!(w.horizon, connected);
        assert_eq!(w.from, at("2025-04-07T05:55:00+00:00"));

        let w = window(None, connected, secs(3600), secs(300));
        assert_eq!(w.horizon, at("2025-04-07T05:00:00+00:00"));
        assert_eq!(w.from, at("2025-04-07T04:55:00+00:00"));

        let w = window(
            Some(at("2025-04-08T10:00:00+00:00")),
            connected,
            secs(0),
            secs(300),
        );
        assert_eq!(w.from, at("2025-04-08T09:55:00+00:00"));
        assert_eq!(w.horizon, connected);
    }

    #[test]
    fn the_watermark_advances_to_the_newest_date_prom_reported() {
        let horizon = at("2025-04-07T06:00:00+00:00");
        let newest = at("2025-04-07T07:12:13.456789+00:00");
        assert_eq!(
            next_watermark(None, horizon, Some(newest), secs(2), secs(300)),
            newest
        );
        assert_eq!(
            next_watermark(Some(horizon), horizon, Some(newest), secs(300), secs(300)),
            newest
        );
    }

    #[test]
    fn a_sweep_longer_than_the_overlap_pulls_the_watermark_back_by_the_excess() {
        let horizon = at("2025-04-07T06:00:00+00:00");
        let newest = at("2025-04-07T07:00:00+00:00");
        assert_eq!(
            next_watermark(None, horizon, Some(newest), secs(420), secs(300)),
            at("2025-04-07T06:58:00+00:00")
        );
    }

    #[test]
    fn the_watermark_never_moves_backwards() {
        let horizon = at("2025-04-07T06:00:00+00:00");
        let previous = at("2025-04-07T08:00:00+00:00");
        // Nothing listed.
        assert_eq!(
            next_watermark(Some(previous), horizon, None, secs(1), secs(300)),
            previous
        );
        // Only older versions listed (inside the overlap).
        assert_eq!(
            next_watermark(
                Some(previous),
                horizon,
                Some(at("2025-04-07T07:58:00+00:00")),
                secs(1),
                secs(300)
            ),
            previous
        );
        // A first sweep that found nothing records the horizon.
        assert_eq!(
            next_watermark(None, horizon, None, secs(1), secs(300)),
            horizon
        );
    }
}
