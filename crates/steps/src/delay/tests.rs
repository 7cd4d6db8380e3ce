//! The `delay` step's config and the times `until` accepts.

use super::{Delay, time_of};
use crate::test_support::{self, Ran};
use serde_json::json;

#[tokio::test]
async fn asks_the_engine_to_wait_for_a_duration_or_until_a_time() {
    match test_support::run(json!({ "id": "d", "delay": { "for": "90s" } }), json!(null)).await.result.unwrap() {
        Ran::Delay(d) => assert_eq!(d, Delay::For(std::time::Duration::from_secs(90))),
        other => panic!("a delay, got {other:?}"),
    }
    let at = json!({ "id": "d", "delay": { "until": ".at" } });
    match test_support::run(at, json!({ "at": "2027-01-04T09:00:00Z" })).await.result.unwrap() {
        Ran::Delay(d) => assert_eq!(d, Delay::Until(1_799_053_200_000)),
        other => panic!("a delay, got {other:?}"),
    }
}

#[test]
fn until_takes_rfc3339_or_epoch_seconds() {
    assert_eq!(time_of(&json!("2027-01-04T10:00:00+01:00")).unwrap(), 1_799_053_200_000);
    assert_eq!(time_of(&json!(1_799_053_200.5)).unwrap(), 1_799_053_200_500);
    for bad in [json!("tomorrow"), json!(-5), json!(null), json!({})] {
        assert_eq!(time_of(&bad).unwrap_err().code, "delay_time", "{bad}");
    }
}

#[test]
fn exactly_one_of_for_and_until() {
    let p = test_support::problems(json!({ "id": "d", "delay": { "for": "1h", "until": "now" } }));
    assert_eq!(p[0].0, "steps[0].delay", "{p:?}");
    let p = test_support::problems(json!({ "id": "d", "delay": {} }));
    assert_eq!(p[0].0, "steps[0].delay", "{p:?}");
    let p = test_support::problems(json!({ "id": "d", "delay": { "until": "now +" } }));
    assert_eq!(p[0].0, "steps[0].delay.until", "{p:?}");
}
