//! An MQTT client that publishes readings with QoS 1, for the simulator and
//! for replays: it keeps the connection going, counts the broker's
//! acknowledgements, and on `finish` waits for them before disconnecting,
//! so a run that ends has really handed everything to the broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ClientError, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;

pub struct Publisher {
    client: AsyncClient,
    poller: JoinHandle<()>,
    acked: Arc<AtomicU64>,
    sent: u64,
}

/// A broker to publish to, and the login it asks for, if any.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub login: Option<(String, String)>,
}

impl Target {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
            login: None,
        }
    }
}

impl Publisher {
    /// Connects to `broker` as `<role>-<pid>`; reconnects by itself if the
    /// broker goes.
    pub fn connect(broker: &Target, role: &str) -> Self {
        let mut options = MqttOptions::new(
            format!("{role}-{}", std::process::id()),
            &broker.host,
            broker.port,
        );
        if let Some((username, password)) = &broker.login {
            options.set_credentials(username, password);
        }
        // A persistent session: what was not acknowledged is sent again
        // after a reconnect.
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_inflight(500);
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let counter = acked.clone();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "publisher connection lost; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Self {
            client,
            poller,
            acked,
            sent: 0,
        }
    }

    pub async fn publish(&mut self, topic: String, payload: String) -> Result<(), ClientError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        self.sent += 1;
        Ok(())
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits up to `timeout` for the broker to acknowledge everything sent,
    /// disconnects, and returns how many were acknowledged.
    pub async fn finish(self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.poller).await;
        self.acked.load(Ordering::Relaxed)
    }
}
