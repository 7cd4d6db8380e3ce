//! Signed webhooks (`trigger.webhook.verify`): the signing secrets resolved once per
//! deployment ([`compile`]), and each delivery checked over its raw body exactly as received
//! ([`VerifySpec::check`]).
//!
//! Schemes: Standard Webhooks (`webhook-id` / `webhook-timestamp` / `webhook-signature`),
//! GitHub (`X-Hub-Signature-256`), Stripe (`Stripe-Signature`), Intuit (`intuit-signature`) and
//! a generic HMAC in a header.
//! Signatures are compared in constant time (`hmac`'s `verify_slice`); a refusal says what
//! failed in general terms and never an expected value.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use flowgate_model::trigger::{
    DEFAULT_SIGNATURE_TOLERANCE, DEFAULT_STRIPE_TOLERANCE, HmacVerify, PayloadPart, VerifyScheme, WebhookVerify,
    parse_payload,
};
use flowgate_model::{Diags, Path};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::{Map, Value};
use std::time::Duration;

/// Base64 as senders write it: standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A webhook's signature check with its secrets resolved. Holds key material: it is neither
/// printed nor recorded.
pub struct VerifySpec {
    scheme: Scheme,
    /// The accepted keys (several while rotating); empty keys are never kept.
    keys: Vec<Vec<u8>>,
}

enum Scheme {
    StandardWebhooks { tolerance: Duration },
    Github,
    Stripe { tolerance: Duration },
    Intuit(HmacSpec),
    Hmac(HmacSpec),
}

struct HmacSpec {
    header: http::HeaderName,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: Option<String>,
    timestamp: Option<(http::HeaderName, Duration)>,
    payload: Vec<PayloadPart>,
}

#[derive(Clone, Copy)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Clone, Copy)]
enum Encoding {
    Hex,
    Base64,
}

/// Why a delivery was refused: what failed, in general terms (never an expected value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A header the scheme needs is absent.
    #[error("missing the `{0}` header")]
    MissingHeader(String),
    /// A header is there but cannot be read as the scheme writes it.
    #[error("the `{0}` header is malformed")]
    Malformed(String),
    /// The signed timestamp is too old or too far in the future.
    #[error("the signature's timestamp is outside the tolerance")]
    Timestamp,
    /// Well-formed signatures, none made with an accepted secret over this body.
    #[error("no signature matched")]
    NoMatch,
    /// No usable secret (config values not set): nothing can be accepted.
    #[error("no signing secret is configured")]
    NoSecret,
}

impl VerifySpec {
    /// The scheme's key (`standardWebhooks`, `github`, `stripe`, `intuit`, `hmac`).
    pub fn scheme(&self) -> &'static str {
        match self.scheme {
            Scheme::StandardWebhooks { .. } => "standardWebhooks",
            Scheme::Github => "github",
            Scheme::Stripe { .. } => "stripe",
            Scheme::Intuit(_) => "intuit",
            Scheme::Hmac(_) => "hmac",
        }
    }

    /// What the API shows of it: the scheme, how many secrets are accepted, the tolerance and
    /// (for `hmac`) the header and algorithm — never a secret.
    pub fn describe(&self) -> Value {
        let mut m = Map::new();
        m.insert("scheme".into(), Value::from(self.scheme()));
        m.insert("secrets".into(), Value::from(self.keys.len()));
        let tolerance = match &self.scheme {
            Scheme::StandardWebhooks { tolerance } | Scheme::Stripe { tolerance } => Some(*tolerance),
            Scheme::Hmac(h) => {
                m.insert("header".into(), Value::from(h.header.as_str()));
                let algorithm = match h.algorithm {
                    Algorithm::Sha1 => "sha1",
                    Algorithm::Sha256 => "sha256",
                    Algorithm::Sha512 => "sha512",
                };
                m.insert("algorithm".into(), Value::from(algorithm));
                m.insert(
                    "encoding".into(),
                    Value::from(match h.encoding {
                        Encoding::Hex => "hex",
                        Encoding::Base64 => "base64",
                    }),
                );
                if let Some((header, _)) = &h.timestamp {
                    m.insert("timestampHeader".into(), Value::from(header.as_str()));
                }
                h.timestamp.as_ref().map(|(_, t)| *t)
            }
            Scheme::Github | Scheme::Intuit(_) => None,
        };
        if let Some(t) = tolerance {
            m.insert("toleranceSeconds".into(), Value::from(t.as_secs()));
        }
        Value::Object(m)
    }

    /// Checks a delivery: its headers and raw body, at `now_ms` (the engine's clock).
    ///
    /// # Errors
    /// What failed, without expected values.
    pub fn check(&self, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Result<(), Refused> {
        if self.keys.is_empty() {
            return Err(Refused::NoSecret);
        }
        let (algorithm, parts, given): (Algorithm, Vec<&[u8]>, Vec<Vec<u8>>) = match &self.scheme {
            Scheme::StandardWebhooks { tolerance } => {
                let id = header(headers, "webhook-id")?;
                let ts = header(headers, "webhook-timestamp")?;
                let sigs = header_values(headers, "webhook-signature")?;
                fresh(parse_time(ts, "webhook-timestamp")?, now_ms, *tolerance)?;
                // A space-separated list of `<version>,<signature>`; only `v1` is HMAC-SHA256.
                let given: Vec<Vec<u8>> = sigs
                    .iter()
                    .flat_map(|v| v.split_ascii_whitespace())
                    .filter_map(|s| s.strip_prefix("v1,"))
                    .filter_map(|b| B64.decode(b).ok())
                    .collect();
                if given.is_empty() {
                    return Err(Refused::Malformed("webhook-signature".into()));
                }
                (Algorithm::Sha256, vec![id.as_bytes(), b".", ts.as_bytes(), b".", body], given)
            }
            Scheme::Github => {
                const NAME: &str = "X-Hub-Signature-256";
                let given: Vec<Vec<u8>> = header_values(headers, NAME)?
                    .iter()
                    .filter_map(|v| v.trim().strip_prefix("sha256="))
                    .filter_map(|h| hex::decode(h).ok())
                    .collect();
                if given.is_empty() {
                    return Err(Refused::Malformed(NAME.into()));
                }
                (Algorithm::Sha256, vec![body], given)
            }
            Scheme::Stripe { tolerance } => {
                const NAME: &str = "Stripe-Signature";
                let mut t = None;
                let mut given = Vec::new();
                for item in header_values(headers, NAME)?.iter().flat_map(|v| v.split(',')) {
                    match item.trim().split_once('=') {
                        Some(("t", v)) if t.is_none() => t = Some(v),
                        Some(("v1", v)) => given.extend(hex::decode(v).ok()),
                        _ => {}
                    }
                }
                let Some(t) = t else { return Err(Refused::Malformed(NAME.into())) };
                fresh(parse_time(t, NAME)?, now_ms, *tolerance)?;
                if given.is_empty() {
                    return Err(Refused::Malformed(NAME.into()));
                }
                (Algorithm::Sha256, vec![t.as_bytes(), b".", body], given)
            }
            Scheme::Intuit(h) | Scheme::Hmac(h) => {
                let name = h.header.as_str();
                let given: Vec<Vec<u8>> = header_values(headers, name)?
                    .iter()
                    .filter_map(|v| match &h.prefix {
                        Some(p) => v.trim().strip_prefix(p.as_str()),
                        None => Some(v.trim()),
                    })
                    .filter_map(|s| match h.encoding {
                        Encoding::Hex => hex::decode(s.trim()).ok(),
                        Encoding::Base64 => B64.decode(s.trim()).ok(),
                    })
                    .collect();
                if given.is_empty() {
                    return Err(Refused::Malformed(name.into()));
                }
                let timestamp = match &h.timestamp {
                    Some((ts_header, tolerance)) => {
                        let ts = header(headers, ts_header.as_str())?;
                        fresh(parse_time(ts, ts_header.as_str())?, now_ms, *tolerance)?;
                        Some(ts)
                    }
                    None => None,
                };
                let parts = h
                    .payload
                    .iter()
                    .map(|p| match p {
                        PayloadPart::Text(t) => t.as_bytes(),
                        PayloadPart::Timestamp => timestamp.unwrap_or("").as_bytes(),
                        PayloadPart::Body => body,
                    })
                    .collect();
                (h.algorithm, parts, given)
            }
        };
        // Every key is tried, so the time taken does not tell which one matched.
        let mut matched = false;
        for key in &self.keys {
            matched |= match algorithm {
                Algorithm::Sha1 => any_matches::<Hmac<sha1::Sha1>>(key, &parts, &given),
                Algorithm::Sha256 => any_matches::<Hmac<sha2::Sha256>>(key, &parts, &given),
                Algorithm::Sha512 => any_matches::<Hmac<sha2::Sha512>>(key, &parts, &given),
            };
        }
        if matched { Ok(()) } else { Err(Refused::NoMatch) }
    }
}

/// True when one of `given` is the MAC of the concatenated `parts` under `key` (each
/// compared in constant time).
fn any_matches<M: Mac + KeyInit + Clone>(key: &[u8], parts: &[&[u8]], given: &[Vec<u8>]) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else { return false };
    for p in parts {
        mac.update(p);
    }
    let mut matched = false;
    for g in given {
        matched |= mac.clone().verify_slice(g).is_ok();
    }
    matched
}

/// A header's first value, as text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Refused> {
    let v = headers.get(name).ok_or_else(|| Refused::MissingHeader(name.into()))?;
    v.to_str().map_err(|_| Refused::Malformed(name.into()))
}

/// Every value of a header, as text (at least one).
fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, Refused> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return Err(match headers.contains_key(name) {
            true => Refused::Malformed(name.into()),
            false => Refused::MissingHeader(name.into()),
        });
    }
    Ok(values)
}

/// A Unix time in seconds.
fn parse_time(text: &str, header: &str) -> Result<i64, Refused> {
    text.trim().parse::<i64>().map_err(|_| Refused::Malformed(header.into()))
}

/// `t` (Unix seconds) is within `tolerance` of now, either way (now counted in whole seconds,
/// as the sender's timestamp is).
fn fresh(t: i64, now_ms: i64, tolerance: Duration) -> Result<(), Refused> {
    let now = i128::from(now_ms.div_euclid(1000));
    let off_ms = (now - i128::from(t)).abs() * 1000;
    if off_ms > tolerance.as_millis() as i128 { Err(Refused::Timestamp) } else { Ok(()) }
}

/// The key of a Standard Webhooks secret: base64 after an optional `whsec_`.
fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.trim();
    B64.decode(b64.strip_prefix("whsec_").unwrap_or(b64)).ok()
}

/// Compiles a webhook's `verify` for a deployment whose config is `config`: `{{ $config.x }}`
/// secrets are resolved now (an unset value is only a problem once every value is set, as
/// for `auth`). `None` without `verify` (or when its problems are reported).
pub fn compile(
    verify: Option<&WebhookVerify>,
    config: &Value,
    values_missing: bool,
    path: &Path,
    diags: &mut Diags,
) -> Option<VerifySpec> {
    // No scheme, or several: reported by the model's checks.
    let scheme = verify?.scheme()?;
    let at = path.key(scheme.name());
    let mut keys = Vec::new();
    for (p, written) in scheme.secrets(&at) {
        let Some(secret) = resolve(written, config, values_missing, &p, diags) else { continue };
        let key = match scheme {
            VerifyScheme::StandardWebhooks(_) => match standard_webhooks_key(&secret) {
                Some(k) => k,
                None => {
                    diags.error(&p, "not a Standard Webhooks secret: expected `whsec_` followed by base64");
                    continue;
                }
            },
            _ => secret.into_bytes(),
        };
        if key.is_empty() {
            diags.error(&p, "the secret is empty");
            continue;
        }
        keys.push(key);
    }
    let tolerance = |default: flowgate_model::Dur| scheme.tolerance().unwrap_or(default).0;
    let scheme = match scheme {
        VerifyScheme::StandardWebhooks(_) => {
            Scheme::StandardWebhooks { tolerance: tolerance(DEFAULT_SIGNATURE_TOLERANCE) }
        }
        VerifyScheme::Github(_) => Scheme::Github,
        VerifyScheme::Stripe(_) => Scheme::Stripe { tolerance: tolerance(DEFAULT_STRIPE_TOLERANCE) },
        VerifyScheme::Intuit(_) => Scheme::Intuit(intuit()),
        VerifyScheme::Hmac(h) => Scheme::Hmac(compile_hmac(h)?),
    };
    Some(VerifySpec { scheme, keys })
}

/// Intuit's header (QuickBooks Online webhooks).
const INTUIT_SIGNATURE: &str = "intuit-signature";

/// Intuit's settings, the generic scheme's fixed: base64 HMAC-SHA256 of the raw body in
/// `intuit-signature`, keyed with the verifier token's text; no prefix, nothing else signed
/// (no timestamp).
fn intuit() -> HmacSpec {
    HmacSpec {
        header: http::HeaderName::from_static(INTUIT_SIGNATURE),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        prefix: None,
        timestamp: None,
        payload: vec![PayloadPart::Body],
    }
}

/// The generic scheme's settings (`None` when they do not check: reported by the model).
fn compile_hmac(h: &HmacVerify) -> Option<HmacSpec> {
    let algorithm = match h.algorithm.as_str() {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return None,
    };
    let encoding = match h.encoding.as_str() {
        "hex" => Encoding::Hex,
        "base64" => Encoding::Base64,
        _ => return None,
    };
    let timestamp = match &h.timestamp_header {
        Some(name) => Some((
            http::HeaderName::from_bytes(name.as_bytes()).ok()?,
            h.tolerance.unwrap_or(DEFAULT_SIGNATURE_TOLERANCE).0,
        )),
        None => None,
    };
    Some(HmacSpec {
        header: http::HeaderName::from_bytes(h.header.as_bytes()).ok()?,
        algorithm,
        encoding,
        prefix: h.prefix.clone().filter(|p| !p.is_empty()),
        timestamp,
        payload: parse_payload(h.payload_template()).ok()?,
    })
}

/// A secret as written: a literal, or a template over `$config` evaluated now. `None` when
/// there is none to use (the problem, if it is one, is recorded at `at`).
fn resolve(written: &str, config: &Value, values_missing: bool, at: &Path, diags: &mut Diags) -> Option<String> {
    if !written.contains("{{") {
        // An empty literal is reported by the model's checks.
        return Some(written.to_owned()).filter(|s| !s.trim().is_empty());
    }
    super::credential::resolve(written, config, values_missing, "secret", at, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml_verify: Value) -> Result<VerifySpec, Vec<String>> {
        let verify: WebhookVerify = serde_json::from_value(yaml_verify).expect("verify decodes");
        let mut diags = Diags::new(Default::default());
        let config = serde_json::json!({ "s": "from-config" });
        let spec = compile(Some(&verify), &config, false, &Path::root().key("verify"), &mut diags);
        if diags.is_empty() {
            Ok(spec.expect("a spec"))
        } else {
            Err(diags.into_vec().into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect())
        }
    }

    fn mac256(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn github_signature_over_the_raw_body() {
        let s = spec(serde_json::json!({ "github": { "secret": "{{ $config.s }}" } })).unwrap();
        let body = br#"{"a":1}"#;
        let mut h = HeaderMap::new();
        assert_eq!(s.check(&h, body, 0), Err(Refused::MissingHeader("X-Hub-Signature-256".into())));
        let sig = format!("sha256={}", hex::encode(mac256(b"from-config", body)));
        h.insert("x-hub-signature-256", sig.parse().unwrap());
        assert_eq!(s.check(&h, body, 0), Ok(()));
        assert_eq!(s.check(&h, br#"{"a":2}"#, 0), Err(Refused::NoMatch));
    }

    #[test]
    fn published_vectors() {
        // The Standard Webhooks specification's example.
        let s = spec(serde_json::json!({ "standardWebhooks": { "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } }))
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap());
        h.insert("webhook-timestamp", "1614265330".parse().unwrap());
        h.insert("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".parse().unwrap());
        assert_eq!(s.check(&h, br#"{"test": 2432232314}"#, 1_614_265_330_000), Ok(()));
        assert_eq!(s.check(&h, br#"{"test": 2432232315}"#, 1_614_265_330_000), Err(Refused::NoMatch));
        // GitHub's documented example.
        let s = spec(serde_json::json!({ "github": { "secret": "It's a Secret to Everybody" } })).unwrap();
        let mut h = HeaderMap::new();
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        h.insert("x-hub-signature-256", sig.parse().unwrap());
        assert_eq!(s.check(&h, b"Hello, World!", 0), Ok(()));
        // HMAC-SHA1/256/512 of the pangram under `key`, hex.
        let fox = b"The quick brown fox jumps over the lazy dog";
        for (alg, hex_sig) in [
            ("sha1", "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"),
            ("sha256", "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"),
            (
                "sha512",
                "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a",
            ),
        ] {
            let s =
                spec(serde_json::json!({ "hmac": { "secret": "key", "header": "X-Sig", "algorithm": alg } })).unwrap();
            let mut h = HeaderMap::new();
            h.insert("x-sig", hex_sig.to_uppercase().parse().unwrap());
            assert_eq!(s.check(&h, fox, 0), Ok(()), "{alg}");
            assert_eq!(s.check(&h, b"The quick brown fox jumps over the lazy cog", 0), Err(Refused::NoMatch), "{alg}");
        }
    }

    /// Intuit's `intuit-signature` value: base64 of the HMAC-SHA256 of the raw body.
    fn intuit_sig(verifier: &str, body: &[u8]) -> http::HeaderValue {
        B64.encode(mac256(verifier.as_bytes(), body)).parse().unwrap()
    }

    #[test]
    fn intuit_signature_over_the_raw_body() {
        let s = spec(serde_json::json!({ "intuit": { "secret": "{{ $config.s }}" } })).unwrap();
        assert_eq!(s.scheme(), "intuit");
        assert_eq!(s.describe(), serde_json::json!({ "scheme": "intuit", "secrets": 1 }));
        // Both shapes Intuit sends: the legacy object and the CloudEvents list.
        let legacy = br#"{"eventNotifications":[{"realmId":"9130","dataChangeEvent":{"entities":[{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2025-01-01T00:00:00.000Z"}]}}]}"#;
        let cloudevents = br#"[{"specversion":"1.0","id":"e1","source":"intuit.abc","type":"qbo.customer.created.v1","time":"2025-01-01T00:00:00Z","intuitentityid":"1","intuitaccountid":"9130","data":{}}]"#;
        for body in [&legacy[..], &cloudevents[..]] {
            let mut h = HeaderMap::new();
            assert_eq!(s.check(&h, body, 0), Err(Refused::MissingHeader("intuit-signature".into())));
            h.insert("intuit-signature", intuit_sig("from-config", body));
            assert_eq!(s.check(&h, body, 0), Ok(()));
            // One byte changed.
            let mut altered = body.to_vec();
            altered[body.len() / 2] ^= 1;
            assert_eq!(s.check(&h, &altered, 0), Err(Refused::NoMatch));
            // Another app's verifier token.
            h.insert("intuit-signature", intuit_sig("another-token", body));
            assert_eq!(s.check(&h, body, 0), Err(Refused::NoMatch));
            // A hex digest (as GitHub writes it) is not Intuit's base64.
            h.insert("intuit-signature", hex::encode(mac256(b"from-config", body)).parse().unwrap());
            assert_eq!(s.check(&h, body, 0), Err(Refused::NoMatch));
            h.insert("intuit-signature", "%%%".parse().unwrap());
            assert_eq!(s.check(&h, body, 0), Err(Refused::Malformed("intuit-signature".into())));
        }
        // A vector computed independently (Python's hmac module); the padding is optional.
        let vector = spec(serde_json::json!({ "intuit": { "secret": "verifier-token" } })).unwrap();
        for sig in ["PoTD6NkQ7ZMymzly6D5JRrVrHxAE3mCtl20M12uy6iM=", "PoTD6NkQ7ZMymzly6D5JRrVrHxAE3mCtl20M12uy6iM"] {
            let mut h = HeaderMap::new();
            h.insert("intuit-signature", sig.parse().unwrap());
            assert_eq!(vector.check(&h, br#"{"eventNotifications":[]}"#, 0), Ok(()), "{sig}");
            assert_eq!(vector.check(&h, br#"{"eventNotifications": []}"#, 0), Err(Refused::NoMatch), "{sig}");
        }
        // No timestamp is signed or needed: the time does not matter.
        let mut h = HeaderMap::new();
        h.insert("intuit-signature", intuit_sig("from-config", legacy));
        assert_eq!(s.check(&h, legacy, i64::MAX), Ok(()));
    }

    #[test]
    fn intuit_rotated_tokens_accept_either() {
        let s = spec(serde_json::json!({ "intuit": { "secrets": ["old-verifier", "{{ $config.s }}"] } })).unwrap();
        assert_eq!(s.describe()["secrets"], 2);
        let body = br#"{"eventNotifications":[]}"#;
        for token in ["old-verifier", "from-config"] {
            let mut h = HeaderMap::new();
            h.insert("intuit-signature", intuit_sig(token, body));
            assert_eq!(s.check(&h, body, 0), Ok(()), "{token}");
        }
        let mut h = HeaderMap::new();
        h.insert("intuit-signature", intuit_sig("retired-verifier", body));
        assert_eq!(s.check(&h, body, 0), Err(Refused::NoMatch));
    }

    #[test]
    fn intuit_secret_from_config_must_not_be_empty() {
        let verify: WebhookVerify =
            serde_json::from_value(serde_json::json!({ "intuit": { "secret": "{{ $config.qbVerifier }}" } })).unwrap();
        let mut diags = Diags::new(Default::default());
        let config = serde_json::json!({ "qbVerifier": "" });
        compile(Some(&verify), &config, false, &Path::root().key("verify"), &mut diags);
        let e: Vec<String> = diags.into_vec().into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("verify.intuit.secret: "), "{e:?}");
    }

    #[test]
    fn payload_templates() {
        use PayloadPart::*;
        assert_eq!(parse_payload("{body}").unwrap(), [Body]);
        assert_eq!(
            parse_payload("v0:{timestamp}:{body}").unwrap(),
            [Text("v0:".into()), Timestamp, Text(":".into()), Body]
        );
        assert_eq!(parse_payload("{body}{").unwrap(), [Body, Text("{".into())]);
        assert!(parse_payload("{timestamp}").unwrap_err().contains("{body}"));
        assert!(parse_payload("{id}.{body}").unwrap_err().contains("unknown placeholder `{id}`"));
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        let tol = Duration::from_secs(300);
        let now = 1_000_000_000;
        assert_eq!(fresh(1_000_000 - 300, now, tol), Ok(()));
        assert_eq!(fresh(1_000_000 + 300, now, tol), Ok(()));
        assert_eq!(fresh(1_000_000 - 301, now, tol), Err(Refused::Timestamp));
        assert_eq!(fresh(1_000_000 + 301, now, tol), Err(Refused::Timestamp));
        assert_eq!(fresh(i64::MIN, now, tol), Err(Refused::Timestamp));
    }

    #[test]
    fn invalid_standard_webhooks_secret_is_located() {
        let e = spec(serde_json::json!({ "standardWebhooks": { "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_%%%"] } }))
            .err()
            .unwrap();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("verify.standardWebhooks.secrets[1]: not a Standard Webhooks secret"), "{e:?}");
    }

    #[test]
    fn unset_config_secrets_refuse_everything() {
        let verify: WebhookVerify =
            serde_json::from_value(serde_json::json!({ "github": { "secret": "{{ $config.nope }}" } })).unwrap();
        let mut diags = Diags::new(Default::default());
        let s = compile(Some(&verify), &Value::Object(Map::new()), true, &Path::root(), &mut diags).unwrap();
        assert!(diags.is_empty(), "lenient while values are missing");
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", format!("sha256={}", hex::encode(mac256(b"", b"x"))).parse().unwrap());
        assert_eq!(s.check(&h, b"x", 0), Err(Refused::NoSecret));
    }
}
