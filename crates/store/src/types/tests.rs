//! Folding a batch of journal entries and events.

use super::*;

fn rec(step: &str, status: &str, input: Option<&str>, output: Option<&str>) -> StepRecord {
    StepRecord {
        execution_id: "e".into(),
        step_id: step.into(),
        round: 1,
        attempt: 1,
        seq: 0,
        status: status.into(),
        input: input.map(Into::into),
        output: output.map(Into::into),
        error: None,
        response: None,
        started_at: 0,
        finished_at: 0,
    }
}

#[test]
fn fills_inputs_from_the_last_completed_output() {
    let mut r = vec![
        rec("a", "succeeded", None, Some("1")),
        rec("b", "failed", None, None),
        rec("b", "succeeded", None, Some("2")),
        rec("sw", "succeeded", Some("9"), Some("3")),
        rec("c", "skipped", None, Some("3")),
    ];
    fill_inputs(&mut r, "{\"t\":0}");
    let inputs: Vec<_> = r.iter().map(|x| x.input.clone().unwrap()).collect();
    assert_eq!(inputs, vec!["{\"t\":0}", "1", "1", "9", "3"]);
}
