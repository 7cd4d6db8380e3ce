//! Runs a fake's router on an ephemeral loopback port, on the caller's tokio runtime.
//!
//! Binding comes before building the router's state because the fakes put their own absolute
//! URL in answers (`@odata.nextLink`, `OData-EntityId`, redirects).

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A bound listening socket on `127.0.0.1:0`.
pub(crate) struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `127.0.0.1:0`.
    ///
    /// # Panics
    /// If the loopback interface cannot be bound: a test machine without it cannot run fakes.
    pub(crate) async fn loopback() -> Bound {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("fake server: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake server: local address");
        Bound { listener, addr }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `router` on the socket in a task of the current runtime.
    pub(crate) fn serve(self, router: Router) -> Running {
        let task = tokio::spawn(async move {
            // `serve` only returns on an accept error; a fake has nobody to report it to, and
            // the test that uses it fails on its own when requests stop being answered.
            let _ = axum::serve(self.listener, router).await;
        });
        Running { task }
    }
}

/// A fake's accept loop; dropping it stops accepting new connections.
pub(crate) struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
