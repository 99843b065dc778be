//! The secrets port the commands write through: the devstack's local files, or Secrets Manager.

use std::sync::Arc;

use shared::clock::SharedClock;
use shared::secrets::SecretWriter;
use shared::secrets::aws::SecretsManagerStore;
use shared::secrets::file::FileSecrets;

use crate::cli::GlobalArgs;
use crate::error::Error;

/// The secrets store chosen by the global flags: Secrets Manager with `--aws` (the standard AWS
/// environment, including `AWS_ENDPOINT_URL`), else `<data-dir>/secrets`.
pub async fn secrets(
    global: &GlobalArgs,
    clock: SharedClock,
) -> Result<Arc<dyn SecretWriter>, Error> {
    if global.aws {
        let config = shared::aws::load().await;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        return Ok(Arc::new(SecretsManagerStore::new(client)));
    }
    let files = FileSecrets::open(&global.data_dir, clock).map_err(|source| Error::DataDir {
        path: global.data_dir.clone(),
        source,
    })?;
    Ok(Arc::new(files))
}
