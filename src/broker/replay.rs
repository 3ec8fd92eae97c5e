//! What `promsync replay` means, whichever backend holds the log: the window a logged
//! notification must fall in (by the time promsync received it, at the precision it was
//! stored with), what becomes of each one read, and how far past the window a reader
//! must still look before it may stop.

use std::{num::NonZeroUsize, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::InboundMessage;
use crate::{
    domain::Source,
    prom::ids::{EventId, ShopId},
};

/// What `promsync replay` asks for.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub since: DateTime<Utc>,
    /// Last moment of the window, inclusive; `None` reads up to the end the log had when
    /// the replay began.
    pub until: Option<DateTime<Utc>>,
    pub shop: Option<ShopId>,
    /// Re-apply events the inbox already holds (under fresh event ids); the importer's
    /// `date_modified` check still keeps every order monotonic.
    pub force: bool,
    /// Re-fed messages the broker has not yet confirmed (RabbitMQ), or re-fed per
    /// transaction (embedded).
    pub in_flight: NonZeroUsize,
}

impl ReplayRequest {
    /// Enough to keep the broker's disk writes batched; a confirm window much wider only
    /// costs memory (see the replay benchmark in deploy/bench/RESULTS.md).
    pub const DEFAULT_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(512).unwrap();

    /// Everything received in `[since, until]`, of every shop, not forced.
    pub fn new(since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Self {
        Self {
            since,
            until,
            shop: None,
            force: false,
            in_flight: Self::DEFAULT_IN_FLIGHT,
        }
    }

    /// Whether a log entry the log stamped at `logged_at` (its own clock, at its own
    /// precision) lies so far past `until` that nothing received within the window can
    /// follow it: a reader of the log, which is in logging order, may stop there.
    pub fn read_past_window(&self, logged_at: DateTime<Utc>) -> bool {
        self.until.is_some_and(|until| logged_at > until + LOG_LAG)
    }
}

/// How much later than its `received_at` a notification may be logged: the publish that
/// logs it follows the stamp within one confirm timeout and one reconnect. Readers use it
/// only to decide when to stop reading, never to pick what to replay.
pub const LOG_LAG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Logged notifications within the window (each one re-queued or skipped).
    pub read: u64,
    /// Re-fed to the import queue, confirmed by the broker.
    pub requeued: u64,
    /// Another shop's, or undecodable.
    pub skipped: u64,
}

/// What replay does with one logged entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    /// Received before `since` or after `until`: not part of this replay at all.
    OutsideWindow,
    /// Within the window but not re-fed: another shop's, or not a notification.
    Skipped,
    /// Re-feed this payload under this message id.
    Requeue { id: String, payload: Vec<u8> },
}

/// Decides about one logged payload. Shared by both backends so replay means the same
/// everywhere; the window is on `received_at` as stored (nanoseconds), not on the log's
/// own coarser stamps.
pub fn replay_rewrite(payload: &[u8], request: &ReplayRequest) -> Replayed {
    let Ok(mut message) = serde_json::from_slice::<InboundMessage>(payload) else {
        return Replayed::Skipped;
    };
    if message.received_at < request.since
        || request
            .until
            .is_some_and(|until| message.received_at > until)
    {
        return Replayed::OutsideWindow;
    }
    if request.shop.is_some_and(|shop| shop != message.shop_id) {
        return Replayed::Skipped;
    }
    message.source = Source::Replay;
    if request.force {
        message.event_id = EventId::random();
    }
    match serde_json::to_vec(&message) {
        Ok(payload) => Replayed::Requeue {
            id: message.event_id.to_string(),
            payload,
        },
        Err(_) => Replayed::Skipped,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(nanos: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(i64::from(nanos))
    }

    fn logged(shop: i64, received_at: DateTime<Utc>) -> Vec<u8> {
        serde_json::to_vec(&InboundMessage {
            event_id: EventId::random(),
            shop_id: ShopId::try_from(shop).unwrap(),
            source: Source::Webhook,
            received_at,
            order_id: 7,
            order: None,
        })
        .unwrap()
    }

    fn window(since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> ReplayRequest {
        ReplayRequest::new(since, until)
    }

    #[test]
    fn the_window_holds_both_bounds_to_the_nanosecond() {
        let request = window(at(1_000), Some(at(2_000)));

        assert_ne!(
            replay_rewrite(&logged(1, at(1_000)), &request),
            Replayed::OutsideWindow
        );
        assert_ne!(
            replay_rewrite(&logged(1, at(2_000)), &request),
            Replayed::OutsideWindow
        );
        assert_eq!(
            replay_rewrite(&logged(1, at(999)), &request),
            Replayed::OutsideWindow
        );
        assert_eq!(
            replay_rewrite(&logged(1, at(2_001)), &request),
            Replayed::OutsideWindow
        );
    }

    #[test]
    fn a_requeued_notification_keeps_its_event_id_and_is_marked_as_a_replay() {
        let payload = logged(1, at(5));
        let original: InboundMessage = serde_json::from_slice(&payload).unwrap();

        let Replayed::Requeue { id, payload } = replay_rewrite(&payload, &window(at(0), None))
        else {
            panic!("not re-fed")
        };

        let refed: InboundMessage = serde_json::from_slice(&payload).unwrap();
        assert_eq!(id, original.event_id.to_string());
        assert_eq!(refed.event_id.to_string(), id);
        assert_eq!(refed.source, Source::Replay);
    }

    #[test]
    fn a_forced_replay_gives_a_fresh_event_id() {
        let payload = logged(1, at(5));
        let mut request = window(at(0), None);
        request.force = true;

        let Replayed::Requeue { id, .. } = replay_rewrite(&payload, &request) else {
            panic!("not re-fed")
        };

        let original: InboundMessage = serde_json::from_slice(&payload).unwrap();
        assert_ne!(id, original.event_id.to_string());
    }

    #[test]
    fn another_shops_notification_and_an_undecodable_entry_are_skipped() {
        let mut request = window(at(0), None);
        request.shop = Some(ShopId::try_from(2).unwrap());

        assert_eq!(
            replay_rewrite(&logged(1, at(5)), &request),
            Replayed::Skipped
        );
        assert_eq!(replay_rewrite(b"{not json", &request), Replayed::Skipped);
        assert!(matches!(
            replay_rewrite(&logged(2, at(5)), &request),
            Replayed::Requeue { .. }
        ));
    }

    #[test]
    fn a_reader_stops_only_well_past_until_and_never_without_one() {
        let until = at(0);
        let bounded = window(at(0) - chrono::Duration::days(1), Some(until));

        assert!(!bounded.read_past_window(until + LOG_LAG));
        assert!(bounded.read_past_window(until + LOG_LAG + chrono::Duration::milliseconds(1)));
        assert!(!window(until, None).read_past_window(until + chrono::Duration::days(9)));
    }
}
