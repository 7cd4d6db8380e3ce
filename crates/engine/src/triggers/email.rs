//! The e-mail trigger: the address a flow receives at (explicit, or derived from flow,
//! integration and tenant) and the senders it accepts. The server's SMTP receiver looks the
//! address up in the registry and submits the parsed message.

use flowgate_model::trigger::EmailTrigger;

/// An inbound e-mail trigger.
pub struct InboundEmail {
    /// The explicit address (lower case); else one is derived from flow, integration and tenant.
    pub address: Option<String>,
    /// Accepted senders (`*` wildcards, case-insensitive); empty: all.
    pub allow_from: Vec<String>,
}

impl InboundEmail {
    /// True when `sender` may start this flow.
    pub fn allows(&self, sender: &str) -> bool {
        self.allow_from.is_empty()
            || self.allow_from.iter().any(|p| glob_match(&p.to_ascii_lowercase(), &sender.to_ascii_lowercase()))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The compiled trigger: the address in lower case.
pub(crate) fn compile(e: &EmailTrigger) -> InboundEmail {
    InboundEmail { address: e.address.as_deref().map(str::to_ascii_lowercase), allow_from: e.allow_from.clone() }
}
