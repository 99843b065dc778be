//! Fresh signatures on sample events. The files in `events/` carry placeholder keys and old
//! timestamps (a signature is valid for 300 s, and no real key belongs in the repository); before
//! an invocation they are signed again, with the local dev key and webhook secret and the current
//! time, exactly as a caller or the platform would sign them.

use base64::Engine as _;
use serde_json::Value;

use crate::EmuError;

/// The headers of an API Gateway v2 event, lower-cased as API Gateway delivers them.
fn headers_mut(event: &mut Value) -> Result<&mut serde_json::Map<String, Value>, EmuError> {
    event
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| EmuError::Event("the event has no headers object".into()))
}

/// The raw body of an API Gateway v2 event.
fn body_bytes(event: &Value) -> Result<Vec<u8>, EmuError> {
    let body = event.get("body").and_then(Value::as_str).unwrap_or("");
    if event
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| EmuError::Event("isBase64Encoded but the body is not base64".into()))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// Whether the event is an API-key request (it carries `x-access-key`).
pub fn is_signed_request(event: &Value) -> bool {
    event
        .get("headers")
        .and_then(|h| h.get("x-access-key"))
        .is_some()
}

/// Whether the event is a Standard Webhooks delivery (it carries `webhook-id`).
pub fn is_webhook(event: &Value) -> bool {
    event
        .get("headers")
        .and_then(|h| h.get("webhook-id"))
        .is_some()
}

/// Signs an API-key request again: `x-access-key` = `key_id`, `x-timestamp` = `now_secs`,
/// `x-signature` over `METHOD\nPATH?QUERY\nTIMESTAMP\nBODY` with `secret`.
pub fn sign_request(
    event: &mut Value,
    key_id: &str,
    secret: &str,
    now_secs: i64,
) -> Result<(), EmuError> {
    let method = event
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .ok_or_else(|| EmuError::Event("no requestContext.http.method".into()))?
        .to_owned();
    let path = event
        .get("rawPath")
        .and_then(Value::as_str)
        .ok_or_else(|| EmuError::Event("no rawPath".into()))?;
    let query = event
        .get("rawQueryString")
        .and_then(Value::as_str)
        .unwrap_or("");
    let path_and_query = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let body = body_bytes(event)?;
    let ts = now_secs.to_string();
    let signature = shared::auth::signing::sign(secret, &method, &path_and_query, &ts, &body);
    let headers = headers_mut(event)?;
    headers.insert("x-access-key".into(), Value::String(key_id.to_owned()));
    headers.insert("x-timestamp".into(), Value::String(ts));
    headers.insert("x-signature".into(), Value::String(signature));
    Ok(())
}

/// Signs a Standard Webhooks delivery again with `whsec_secret` at `now_secs` (the `webhook-id`
/// is kept).
pub fn sign_webhook(event: &mut Value, whsec_secret: &str, now_secs: i64) -> Result<(), EmuError> {
    let key = platform_sim::decode_webhook_secret(whsec_secret)
        .map_err(|e| EmuError::Event(format!("webhook secret: {e}")))?;
    let body = body_bytes(event)?;
    let headers = headers_mut(event)?;
    let id = headers
        .get("webhook-id")
        .and_then(Value::as_str)
        .ok_or_else(|| EmuError::Event("no webhook-id header".into()))?
        .to_owned();
    let signature = platform_sim::sign(&[key], &id, now_secs, &body);
    headers.insert(
        "webhook-timestamp".into(),
        Value::String(now_secs.to_string()),
    );
    headers.insert("webhook-signature".into(), Value::String(signature));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_request_gets_a_signature_the_verifier_formula_reproduces() {
        let mut e = json!({
            "rawPath": "/v1/credentials/iss_1",
            "rawQueryString": "a=1",
            "requestContext": {"http": {"method": "GET"}},
            "headers": {"x-access-key": "pk_placeholder", "x-timestamp": "0", "x-signature": "00"},
            "body": "",
            "isBase64Encoded": false
        });
        sign_request(&mut e, "pk_real", "s3cret", 1_800_000_000).unwrap();
        assert_eq!(e["headers"]["x-access-key"], "pk_real");
        assert_eq!(e["headers"]["x-timestamp"], "1800000000");
        let expected = shared::auth::signing::sign(
            "s3cret",
            "GET",
            "/v1/credentials/iss_1?a=1",
            "1800000000",
            b"",
        );
        assert_eq!(e["headers"]["x-signature"], expected.as_str());
    }

    #[test]
    fn a_webhook_is_signed_over_its_id_the_new_timestamp_and_its_body() {
        let mut e = json!({
            "headers": {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
            "body": "{\"a\":1}",
            "isBase64Encoded": false
        });
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        sign_webhook(&mut e, secret, 1_800_000_000).unwrap();
        let key = platform_sim::decode_webhook_secret(secret).unwrap();
        assert_eq!(e["headers"]["webhook-timestamp"], "1800000000");
        assert_eq!(
            e["headers"]["webhook-signature"],
            platform_sim::sign(&[key], "msg_1", 1_800_000_000, b"{\"a\":1}").as_str()
        );
        assert!(is_webhook(&e));
        assert!(!is_signed_request(&e));
    }
}
