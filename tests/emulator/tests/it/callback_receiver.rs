//! The callback receiver bootstrap under the Lambda emulator: a Standard Webhooks delivery signed
//! with the secret in Secrets Manager (moto) is recorded once; a duplicate is acknowledged and not
//! recorded again; an unsigned or stale delivery is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Harness, body, invoke, status};

#[tokio::test]
async fn the_callback_bootstrap_records_a_signed_delivery_once_and_refuses_a_stale_one() {
    let h = Harness::start().await;
    let receiver = h.function("CallbackReceiverFunction");

    let answer = invoke(&receiver, &h.webhook(h.event("callback-cak.json"))).await;
    assert_eq!(status(&answer), 200, "{answer}\n{}", receiver.output());
    let first = body(&answer);

    // The platform delivers the same event again: acknowledged, not routed twice.
    let answer = invoke(&receiver, &h.webhook(h.event("callback-cak.json"))).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let second = body(&answer);
    assert_ne!(
        first, second,
        "the duplicate is told apart: {first} / {second}"
    );

    // The sample as it is in the repository: its signature is months old.
    let answer = invoke(&receiver, &h.event("callback-cak.json")).await;
    assert_eq!(status(&answer), 401, "{answer}");

    // Nothing secret in the logs.
    let secret = h.world.webhook_secret().unwrap();
    assert!(!receiver.output().contains(&secret));
}
