//! Delays between step attempts: exponential backoff with jitter, honouring `Retry-After`.

use flowgate_model::RetryPolicy;
use std::time::Duration;

/// Longest delay a `Retry-After` may impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
pub fn delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let b = &policy.backoff;
    let exp = b.multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
    let base = (b.initial.0.as_secs_f64() * exp).min(b.max.0.as_secs_f64());
    let spread = policy.jitter.clamp(0.0, 1.0);
    let factor = 1.0 + spread * (rand::random::<f64>() * 2.0 - 1.0);
    let secs = (base * factor).max(0.0);
    // Durations are capped when parsed; a factor of NaN or infinity falls back to `max`.
    let secs = if secs.is_finite() {
        secs.min(flowgate_model::duration::MAX_DURATION.as_secs_f64())
    } else {
        b.max.0.as_secs_f64()
    };
    let mut d = Duration::from_secs_f64(secs);
    if let Some(ra) = retry_after {
        d = d.max(ra.min(MAX_RETRY_AFTER));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_model::Dur;
    use flowgate_model::step::Backoff;

    #[test]
    fn grows_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            backoff: Backoff { initial: Dur::millis(100), max: Dur::secs(1), multiplier: 2.0 },
            jitter: 0.0,
        };
        assert_eq!(delay(&p, 1, None), Duration::from_millis(100));
        assert_eq!(delay(&p, 2, None), Duration::from_millis(200));
        assert_eq!(delay(&p, 5, None), Duration::from_secs(1));
        assert_eq!(delay(&p, 1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        let j = RetryPolicy { jitter: 0.5, ..p };
        for _ in 0..100 {
            let d = delay(&j, 1, None);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(150), "{d:?}");
        }
    }
}
