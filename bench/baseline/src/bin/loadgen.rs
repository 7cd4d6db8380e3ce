//! Fixed-rate HTTP load with latency percentiles (wrk only does closed-loop load).
//!
//! `loadgen URL RATE SECONDS [BODY] [HEADER=VALUE ...]` sends RATE POST requests per second
//! for SECONDS, each on schedule whether or not earlier ones finished, and prints the
//! achieved rate, the status counts and p50/p90/p99/max latency of each request (from the
//! moment it is sent to the end of its response), and how late the sender fell behind its
//! schedule (tokio's timer has 1 ms resolution, so small lags are the timer's, not the
//! server's; a large lag would mean the load generator could not keep up).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL RATE SECONDS [BODY] [HEADER=VALUE ...]");
        std::process::exit(2);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = args[1].clone();
    let rate: f64 = args[2].parse().expect("rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let body = args.get(4).cloned().unwrap_or_else(|| "{}".into());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    for h in args.iter().skip(5) {
        let (k, v) = h.split_once('=').expect("HEADER=VALUE");
        headers.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let client = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(512).build().unwrap();
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        max_lag = max_lag.max(due.elapsed());
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = client.post(&url).body(body).send().await;
            let status = match r {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (sent.elapsed(), status)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (d, s) = t.await.unwrap();
        lat.push(d);
        *statuses.entry(s).or_default() += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!("requests {total} in {elapsed:.2}s ({:.0}/s); statuses {statuses:?}", total as f64 / elapsed);
    println!("latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}", p(0.5), p(0.9), p(0.99), p(1.0));
    println!("sender lag behind schedule: max {:.2} ms", max_lag.as_secs_f64() * 1000.0);
}
