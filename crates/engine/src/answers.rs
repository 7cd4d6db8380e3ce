//! Steps answered without running them: a flow test's mocks and a dry run's recording
//! (issue 20). Answers are keyed by journal key (`push`, `each[3].push`, `both[a].x`), so a
//! loop's items can each have their own; a test's mock may also name just the step's id,
//! which then answers the step wherever it runs.

use flowgate_steps::StepError;
use serde_json::Value;
use std::collections::HashMap;

/// Kinds a dry run runs for real: they read nothing outside the execution and send nothing.
/// Every other kind (present or future) is answered from the recording, never run.
pub const PURE_KINDS: [&str; 7] = ["transform", "filter", "switch", "log", "respond", "foreach", "parallel"];

/// True when a step of `kind` runs in a dry run rather than being answered.
pub fn is_pure(kind: &str) -> bool {
    PURE_KINDS.contains(&kind)
}

/// What answers a step instead of running it: an output, or a failure (its `onError` applies).
#[derive(Debug, Clone)]
pub enum Answer {
    /// The step's output.
    Output(Value),
    /// The step's failure.
    Error(StepError),
}

/// Answers by journal key or step id.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    answers: HashMap<String, Answer>,
    /// Only by journal key (a dry run's recording: a step moved into a loop is not answered
    /// for every item by what it gave at the top).
    key_only: bool,
}

impl Answers {
    /// Outputs by key (a flow test's `mocks`).
    pub fn outputs(outputs: impl IntoIterator<Item = (String, Value)>) -> Answers {
        Answers { answers: outputs.into_iter().map(|(k, v)| (k, Answer::Output(v))).collect(), key_only: false }
    }

    /// Answers looked up by journal key only.
    pub fn by_key() -> Answers {
        Answers { answers: HashMap::new(), key_only: true }
    }

    /// Sets the answer for `key`.
    pub fn insert(&mut self, key: String, answer: Answer) {
        self.answers.insert(key, answer);
    }

    /// The answer for a step at journal key `key` with id `id`: the key's, else the id's.
    pub fn get(&self, key: &str, id: &str) -> Option<&Answer> {
        self.answers.get(key).or_else(|| if key == id || self.key_only { None } else { self.answers.get(id) })
    }

    /// Forgets the answer for `key`.
    pub fn remove(&mut self, key: &str) {
        self.answers.remove(key);
    }

    /// How many answers there are.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// No answers.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}
