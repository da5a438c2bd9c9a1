//! A program's HTTP as the recording gateway saw it (`guixie.http-recording/1`): each
//! request with the answer it got, in order. Recorded once, it answers the same program's
//! requests again with no network ([`Replayer`]), so an agent's run can be repeated.
//!
//! Requests' credentials (`Authorization`, `Cookie`…) are not kept: a recording is a store
//! item, readable by every local user.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "guixie.http-recording/1";
/// Largest body of a request or an answer the gateway carries, and the most exchanges.
pub const MAX_BODY: usize = 16 << 20;
pub const MAX_EXCHANGES: usize = 10_000;
/// Largest recording read back (bodies are base64 in it).
pub const MAX_RECORDING_BYTES: u64 = 1 << 30;

/// Headers whose values are credentials, replaced by [`REDACTED`] in a recording (requests'
/// and answers': a session cookie is one too).
const CREDENTIALS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-goog-api-key",
];
pub const REDACTED: &str = "<not recorded>";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub schema: String,
    pub exchanges: Vec<Exchange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub request: Request,
    pub response: Response,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: String,
    /// Absolute (`http://host:port/path?query`).
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64")]
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64")]
    pub body: Vec<u8>,
}

impl Request {
    /// `METHOD URL`, as errors and reports name a request.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    /// The request as kept: its credentials' values dropped.
    pub fn redacted(mut self) -> Request {
        redact(&mut self.headers);
        self
    }
}

impl Response {
    /// The answer as kept: its credentials' values dropped.
    pub fn redacted(mut self) -> Response {
        redact(&mut self.headers);
        self
    }
}

fn redact(headers: &mut [(String, String)]) {
    for (name, value) in headers {
        if CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
            *value = REDACTED.to_owned();
        }
    }
}

impl Recording {
    pub fn new(exchanges: Vec<Exchange>) -> Recording {
        Recording {
            schema: SCHEMA.to_owned(),
            exchanges,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Recording, String> {
        let r: Recording =
            serde_json::from_slice(bytes).map_err(|e| format!("not an HTTP recording: {e}"))?;
        if r.schema != SCHEMA {
            return Err(format!(
                "recording schema {:?}; this guixie reads {SCHEMA:?}",
                r.schema
            ));
        }
        if r.exchanges.len() > MAX_EXCHANGES {
            return Err(format!(
                "{} exchanges; at most {MAX_EXCHANGES} are kept",
                r.exchanges.len()
            ));
        }
        for (i, e) in r.exchanges.iter().enumerate() {
            if !(100..=999).contains(&e.response.status) {
                return Err(format!("exchange {i}: status {}", e.response.status));
            }
            if e.request.body.len() > MAX_BODY || e.response.body.len() > MAX_BODY {
                return Err(format!("exchange {i}: a body over {MAX_BODY} bytes"));
            }
        }
        Ok(r)
    }
}

/// Answers requests from a recording: a request gets the answers recorded for the same
/// method, URL and body, in their order; one asked more often than recorded, or never
/// recorded, gets none.
pub struct Replayer {
    answers: BTreeMap<(String, String, Vec<u8>), VecDeque<Response>>,
}

impl Replayer {
    pub fn new(recording: Recording) -> Replayer {
        let mut answers: BTreeMap<_, VecDeque<Response>> = BTreeMap::new();
        for e in recording.exchanges {
            let key = (e.request.method, e.request.url, e.request.body);
            answers.entry(key).or_default().push_back(e.response);
        }
        Replayer { answers }
    }

    pub fn answer(&mut self, request: &Request) -> Option<Response> {
        let key = (
            request.method.clone(),
            request.url.clone(),
            request.body.clone(),
        );
        self.answers.get_mut(&key)?.pop_front()
    }
}

mod base64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("a body is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, body: &[u8]) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            body: body.to_vec(),
        }
    }

    fn response(body: &str) -> Response {
        Response {
            status: 200,
            reason: "OK".into(),
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn replay_answers_in_recorded_order_and_nothing_unrecorded() {
        let a = request("GET", "http://h/a", b"");
        let rec = Recording::new(vec![
            Exchange {
                request: a.clone(),
                response: response("one"),
            },
            Exchange {
                request: a.clone(),
                response: response("two"),
            },
            Exchange {
                request: request("POST", "http://h/a", b"x"),
                response: response("post"),
            },
        ]);
        let json = serde_json::to_vec(&rec).unwrap();
        let mut r = Replayer::new(Recording::parse(&json).unwrap());
        assert_eq!(r.answer(&a).unwrap().body, b"one");
        assert_eq!(r.answer(&request("POST", "http://h/a", b"y")), None);
        assert_eq!(
            r.answer(&request("POST", "http://h/a", b"x")).unwrap().body,
            b"post"
        );
        assert_eq!(r.answer(&a).unwrap().body, b"two");
        assert_eq!(r.answer(&a), None, "asked more often than recorded");
    }

    #[test]
    fn credentials_are_not_recorded() {
        let kept = request("GET", "http://h/", b"").redacted();
        assert_eq!(
            kept.headers,
            [("Authorization".to_owned(), REDACTED.to_owned())]
        );
    }

    #[test]
    fn a_bad_recording_is_refused_saying_why() {
        let mut rec = Recording::new(vec![Exchange {
            request: request("GET", "http://h/", b""),
            response: response(""),
        }]);
        rec.exchanges[0].response.status = 42;
        let bad = serde_json::to_vec(&rec).unwrap();
        assert!(Recording::parse(&bad)
            .unwrap_err()
            .contains("exchange 0: status 42"));
        let text = String::from_utf8(serde_json::to_vec(&Recording::new(vec![])).unwrap()).unwrap();
        let other = text.replace("recording/1", "recording/2");
        assert!(Recording::parse(other.as_bytes())
            .unwrap_err()
            .contains("recording schema"));
        let not_b64 = r#"{"schema":"guixie.http-recording/1","exchanges":[{"request":{"method":"GET","url":"u","headers":[],"body":"!!"},"response":{"status":200,"reason":"","headers":[],"body":""}}]}"#;
        assert!(Recording::parse(not_b64.as_bytes())
            .unwrap_err()
            .contains("not base64"));
    }
}
