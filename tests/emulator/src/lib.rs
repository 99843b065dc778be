//! The emulator tier lives in `tests/`: each function's release `bootstrap` under the Lambda
//! Runtime Interface Emulator, configured from `template.yaml`, invoked with `events/`, against
//! moto and the platform simulator. Build the bootstraps first (`make bootstraps`; `make test`
//! does), and run under `infra/scripts/with-moto.sh`.
#![forbid(unsafe_code)]
