//! The ingress across a RabbitMQ outage: while the broker cannot be reached it answers 503
//! with `Retry-After` and enqueues nothing; when the broker is back it reconnects by
//! itself, with no restart. The outage is a TCP proxy in front of the real broker that
//! this test cuts and restores.

use std::{net::SocketAddr, time::Duration};

use promsync::broker::Lane;
use serde_json::json;
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::CancellationToken;

use crate::support::{eventually, fixture_order, TestApp, PENDING_ORDER};

/// A TCP proxy to RabbitMQ that can be taken down (open connections cut, new ones
/// refused) and brought back.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
    cut: std::sync::Mutex<CancellationToken>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> std::sync::Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (up, _) = watch::channel(true);
        let proxy = std::sync::Arc::new(Self {
            port: listener.local_addr().unwrap().port(),
            up,
            cut: std::sync::Mutex::new(CancellationToken::new()),
        });
        let this = proxy.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*this.up.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let cut = this.cut.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        proxy
    }

    fn down(&self) {
        self.up.send_replace(false);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn up(&self) {
        self.up.send_replace(true);
    }
}

#[tokio::test]
async fn the_ingress_answers_503_during_a_broker_outage_and_recovers_without_restart() {
    // Arrange: promsync talks to RabbitMQ through the proxy.
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let app = TestApp::builder()
        .importers(0)
        .broker_url(format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port))
        .spawn()
        .await;
    let body = json!({ "order": fixture_order(PENDING_ORDER) });
    let before = app.notify(&body).await;
    assert_eq!(before.status(), 202);

    // Act + Assert: the broker goes away.
    proxy.down();
    let accepted_during = std::sync::atomic::AtomicU32::new(0);
    let during = eventually("503 during the outage", Duration::from_secs(20), || async {
        let r = app.notify(&body).await;
        if r.status() == 202 {
            accepted_during.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(during.headers().contains_key("retry-after"));

    // The broker comes back: the same process accepts again.
    proxy.up();
    eventually("202 after the outage", Duration::from_secs(20), || async {
        (app.notify(&body).await.status() == 202).then_some(())
    })
    .await;

    // Every accepted notification is queued. (A publish cut off before its confirm
    // answered 503 and may still have reached the queue: at least once, never lost.)
    let accepted = 2 + accepted_during.load(std::sync::atomic::Ordering::SeqCst);
    assert!(app.queue_depth(Lane::Inbound).await >= accepted);
}
