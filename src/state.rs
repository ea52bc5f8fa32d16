//! A pass's state in host storage, read and written as JSON under one key, with
//! compare-and-swap: the one place that decides what unreadable state and a concurrent writer
//! mean, for every pass ([`crate::sync`], [`crate::commits`]).

use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads the state under `key` and the bytes it was read from (for [`save`]). Absent state is
/// the default; unreadable state is logged and replaced by the default, which starts the pass
/// afresh (a full listing loses nothing). `what` names the state in the log.
pub fn load<T: DeserializeOwned + Default, H: Host + ?Sized>(
    host: &H,
    key: &str,
    what: &str,
) -> (T, Option<Vec<u8>>) {
    let raw = host.storage_get(key);
    let state = match raw.as_deref().map(serde_json::from_slice::<T>) {
        None => T::default(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            host.log(
                LogLevel::Warn,
                &format!("{key}: unreadable {what} ({e}); starting afresh"),
            );
            T::default()
        }
    };
    (state, raw)
}

/// Writes `state` under `key` if the stored bytes are still `old` (what [`load`] read); fails
/// with a storage error naming `what` when another writer changed them in between.
pub fn save<T: Serialize, H: Host + ?Sized>(
    host: &H,
    key: &str,
    old: Option<&[u8]>,
    state: &T,
    what: &str,
) -> Result<(), ConnectorError> {
    let bytes = serde_json::to_vec(state).map_err(|e| ConnectorError::Storage(e.to_string()))?;
    if host.storage_compare_and_swap(key, old, &bytes) {
        Ok(())
    } else {
        Err(ConnectorError::Storage(format!(
            "{key} changed during this call (is another {what} of this repository running?)"
        )))
    }
}
