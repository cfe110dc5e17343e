//! Websocket tickets: a browser cannot put a credential on a websocket
//! upgrade, so with reads protected the dashboard asks for a ticket with
//! its key (`POST /api/v1/live/ticket`) and opens the websocket with
//! `?ticket=`. A ticket is good once, for 30 seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket is good for.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Tickets outstanding at most: each is asked for with a read credential,
/// and past this the oldest-expiring are not kept.
const MAX_OUTSTANDING: usize = 10_000;

#[derive(Debug, Default)]
pub struct Tickets(Mutex<HashMap<String, Instant>>);

impl Tickets {
    /// A new ticket, good once until [`TICKET_TTL`] from now; `None` while
    /// too many are outstanding.
    pub fn issue(&self) -> Option<String> {
        let mut issued = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        issued.retain(|_, expires| *expires > now);
        if issued.len() >= MAX_OUTSTANDING {
            return None;
        }
        let ticket = hex::encode(rand::random::<[u8; 24]>());
        issued.insert(ticket.clone(), now + TICKET_TTL);
        Some(ticket)
    }

    /// Whether `ticket` was issued and has not expired or been used; it is
    /// used up either way.
    pub fn redeem(&self, ticket: &str) -> bool {
        let mut issued = self.0.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .remove(ticket)
            .is_some_and(|expires| expires > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_good_once() {
        let tickets = Tickets::default();
        let t = tickets.issue().unwrap();
        assert_eq!(t.len(), 48);
        assert!(!tickets.redeem("made-up"));
        assert!(tickets.redeem(&t));
        assert!(!tickets.redeem(&t));
    }
}
