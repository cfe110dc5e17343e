//! What `/ready` reports: whether the daemon can take readings now.

use std::sync::atomic::{AtomicBool, Ordering};

/// Readiness signals set by the parts that know them.
#[derive(Debug, Default)]
pub struct Health {
    mqtt_subscribed: AtomicBool,
}

impl Health {
    /// Ingest holds an acknowledged subscription (false while reconnecting).
    pub fn set_mqtt_subscribed(&self, subscribed: bool) {
        self.mqtt_subscribed.store(subscribed, Ordering::SeqCst);
    }

    pub fn mqtt_subscribed(&self) -> bool {
        self.mqtt_subscribed.load(Ordering::SeqCst)
    }
}
