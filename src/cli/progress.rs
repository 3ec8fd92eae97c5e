//! How `promsync replay` shows its progress: a bar when stderr is a terminal, and JSON
//! lines on stderr otherwise (a pipe, a log collector, a CI job), which a machine can
//! follow without parsing a redrawn line.

use std::{
    io::{IsTerminal, Write},
    sync::Mutex,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::broker::ReplaySummary;

/// JSON lines come at most this often (plus one when the replay ends).
const LINE_EVERY: Duration = Duration::from_secs(1);

pub struct ReplayProgress {
    started: Instant,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Lines {
        out: Mutex<Box<dyn Write + Send>>,
        last: Mutex<Option<Instant>>,
    },
}

/// One JSON progress line.
#[derive(Serialize)]
struct Line {
    replay: ReplaySummary,
    elapsed_s: f64,
    per_s: f64,
    done: bool,
}

impl ReplayProgress {
    /// A bar if stderr is a terminal, JSON lines on stderr otherwise.
    pub fn on_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::new(Shown::Bar(bar))
        } else {
            Self::lines(Box::new(std::io::stderr()))
        }
    }

    /// JSON lines written to `out`.
    pub fn lines(out: Box<dyn Write + Send>) -> Self {
        Self::new(Shown::Lines {
            out: Mutex::new(out),
            last: Mutex::new(None),
        })
    }

    fn new(shown: Shown) -> Self {
        Self {
            started: Instant::now(),
            shown,
        }
    }

    pub fn update(&self, summary: ReplaySummary) {
        match &self.shown {
            Shown::Bar(bar) => bar.set_message(self.describe(summary)),
            Shown::Lines { last, .. } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_some_and(|at| at.elapsed() < LINE_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                drop(last);
                self.line(summary, false);
            }
        }
    }

    pub fn finish(&self, summary: ReplaySummary) {
        match &self.shown {
            Shown::Bar(bar) => bar.finish_with_message(self.describe(summary)),
            Shown::Lines { .. } => self.line(summary, true),
        }
    }

    fn per_s(&self, summary: ReplaySummary) -> f64 {
        summary.requeued as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn describe(&self, summary: ReplaySummary) -> String {
        format!(
            "read {} · re-queued {} · skipped {} · {:.0}/s",
            summary.read,
            summary.requeued,
            summary.skipped,
            self.per_s(summary)
        )
    }

    fn line(&self, summary: ReplaySummary, done: bool) {
        let Shown::Lines { out, .. } = &self.shown else {
            return;
        };
        let line = Line {
            replay: summary,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            per_s: self.per_s(summary),
            done,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        // Progress is a courtesy: a closed stderr must not fail the replay.
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn summary(read: u64) -> ReplaySummary {
        ReplaySummary {
            read,
            requeued: read,
            skipped: 0,
        }
    }

    #[test]
    fn lines_are_json_at_most_once_a_second_and_always_at_the_end() {
        let out = Shared::default();
        let progress = ReplayProgress::lines(Box::new(out.clone()));

        progress.update(summary(1));
        progress.update(summary(2));
        progress.finish(summary(3));

        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["replay"]["read"], 1);
        assert_eq!(lines[0]["done"], false);
        assert_eq!(lines[1]["replay"]["requeued"], 3);
        assert_eq!(lines[1]["done"], true);
        assert!(lines[1]["per_s"].as_f64().is_some());
    }
}
