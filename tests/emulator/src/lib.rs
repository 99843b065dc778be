//! The emulator tier lives in `tests/`: each function's `bootstrap` under the Lambda Runtime
//! Interface Emulator, configured from `template.yaml`, invoked with `events/`, against moto and
//! the platform simulator. It runs the functions' binaries of the profile it is built in
//! (`lambda_emu::bootstraps_beside_current_exe`): in `make test`, the debug binaries that the
//! `--all-targets` build makes beside the tests; with `make emulator PROFILE=release`, the release
//! bootstraps. Run it under `infra/scripts/with-moto.sh`.
#![forbid(unsafe_code)]
