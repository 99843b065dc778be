//! The bench's baseline: a Rust Lambda function that does nothing but answer its event, started
//! the way every function of the bundle is (the same runtime crate, Tokio's multi-threaded
//! runtime, concurrent mode). `lambda-emu bench` cold-starts it beside the functions and prints
//! each function's init as a multiple of this one's, measured in the same run, so that a slow or
//! noisy machine neither hides nor fakes a regression.
#![forbid(unsafe_code)]

use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_concurrent(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
