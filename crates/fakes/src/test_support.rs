//! Helpers shared by the fakes' tests: an HTTP client that talks to loopback fakes.

use std::time::Duration;

/// A client with a timeout that does not follow redirects (the authorization endpoint's 302 is
/// what the tests look at).
pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}
