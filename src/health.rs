//! What `/ready` reports: whether the daemon can take readings now.

use std::sync::atomic::{AtomicBool, Ordering};

/// Readiness signals set by the parts that know them.
#[derive(Debug, Default)]
pub struct Health {
    mqtt_subscribed: AtomicBool,
    /// This instance takes no readings (an API instance of a cluster).
    no_intake: AtomicBool,
}

impl Health {
    /// Ingest holds an acknowledged subscription (false while reconnecting).
    pub fn set_mqtt_subscribed(&self, subscribed: bool) {
        self.mqtt_subscribed.store(subscribed, Ordering::SeqCst);
    }

    pub fn mqtt_subscribed(&self) -> bool {
        self.mqtt_subscribed.load(Ordering::SeqCst)
    }

    /// From now on this instance takes no readings: readiness does not
    /// wait for a subscription, and uploads are refused.
    pub fn set_no_intake(&self) {
        self.no_intake.store(true, Ordering::SeqCst);
    }

    pub fn no_intake(&self) -> bool {
        self.no_intake.load(Ordering::SeqCst)
    }
}

/// `max_connections`, or the `1/share` of the process's open-file limit if
/// that is lower (the web server takes half, the MQTT server a quarter, the
/// rest is for the store, the archive and files): a server out of file
/// descriptors cannot even answer its probes.
pub fn within_open_files(key: &str, max_connections: usize, share: usize) -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match soft_limit {
        Some(limit) if max_connections > limit / share => {
            let lowered = (limit / share).max(1);
            tracing::info!(
                key,
                max_connections,
                open_file_limit = limit,
                lowered,
                "max_connections lowered to a share of the open-file limit"
            );
            lowered
        }
        _ => max_connections,
    }
}
