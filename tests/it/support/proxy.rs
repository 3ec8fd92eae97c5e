//! A TCP proxy for breaking the network between promsync and a service on purpose. It
//! forwards to its upstream until told otherwise: `cut` closes every connection and
//! refuses new ones (a service that is down), `silence` keeps every connection open and
//! forwards nothing either way, and accepts new ones that get no answer (a network
//! partition, a paused host), and `restore` forwards again, bytes held back included.
//!
//! Shared by the integration suite and the chaos suite (which includes this file).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    sync::watch,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Silent,
    Refuse,
}

pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Cancelled to close every open connection (a `cut`), then replaced.
    cut: Mutex<CancellationToken>,
    /// Stops the listener and every connection when the proxy is dropped.
    stop: CancellationToken,
    /// Connections forwarded (or held) so far.
    accepted: AtomicUsize,
}

impl Proxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let (mode, _) = watch::channel(Mode::Forward);
        let proxy = Arc::new(Self {
            port: listener.local_addr().expect("proxy address").port(),
            mode,
            cut: Mutex::new(CancellationToken::new()),
            stop: CancellationToken::new(),
            accepted: AtomicUsize::new(0),
        });
        let this = Arc::downgrade(&proxy);
        let stop = proxy.stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (Ok((client, _)), Some(proxy)) = (accepted, this.upgrade()) else {
                    return;
                };
                if *proxy.mode.borrow() == Mode::Refuse {
                    continue; // dropped: the client sees the connection closed
                }
                proxy.accepted.fetch_add(1, Ordering::SeqCst);
                let cut = proxy.cut.lock().expect("cut lock").clone();
                let (mode, stop) = (proxy.mode.subscribe(), stop.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = stop.cancelled() => {}
                        _ = pump(client_read, server_write, mode.clone()) => {}
                        _ = pump(server_read, client_write, mode) => {}
                    }
                });
            }
        });
        proxy
    }

    /// How many connections clients have opened through the proxy (refused ones aside).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The service goes down: open connections are closed, new ones refused.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Refuse);
        let mut cut = self.cut.lock().expect("cut lock");
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// The service stops answering: connections stay open, nothing gets through.
    pub fn silence(&self) {
        self.mode.send_replace(Mode::Silent);
    }

    /// Forwarding again, in both directions.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Copies `from` to `to` while the proxy forwards; while it is silent, nothing is read
/// (so the sender's buffers fill as behind a partition) and a chunk already read waits.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            _ = mode.wait_for(|m| *m != Mode::Forward) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Two statements: the watch's guard must be gone before the write awaits.
        let forwarding = mode.wait_for(|m| *m == Mode::Forward).await.is_ok();
        if !forwarding || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
