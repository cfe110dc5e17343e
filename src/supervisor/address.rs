//! The address of a supervised actor: the incarnation running now, if
//! any, typed by its message. A supervisor spawns each incarnation through
//! it, so whoever holds the address reaches the actor across restarts, and
//! nobody looks an actor up by name.

use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorCell, ActorRef, Message, MessagingErr, SpawnErr};

/// The address of one supervised actor: the incarnation running now, if
/// any. Clones share it.
pub struct Address<M: Message> {
    /// The name the actor is spawned under (unique per pipeline, so that
    /// several pipelines can live in one process, as tests run them).
    name: Arc<str>,
    current: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M: Message> Clone for Address<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            current: self.current.clone(),
        }
    }
}

impl<M: Message> std::fmt::Debug for Address<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Address")
            .field("name", &self.name)
            .field("running", &self.get().is_some())
            .finish()
    }
}

impl<M: Message> Address<M> {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            current: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actor at this address, if one is running (not stopping or
    /// stopped).
    pub fn get(&self) -> Option<ActorRef<M>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        (current.get_status() < ractor::ActorStatus::Draining).then_some(current)
    }

    /// Sends `msg` to the actor running here; gives it back when none is
    /// (not started yet, or between a failure and its restart).
    pub fn cast(&self, msg: M) -> Result<(), M> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(actor) = current else {
            return Err(msg);
        };
        match actor.cast(msg) {
            Ok(()) => Ok(()),
            Err(MessagingErr::SendErr(msg)) => Err(msg),
            // A typed reference cannot send a message of the wrong type,
            // and a local actor has no other failure.
            Err(e) => {
                tracing::error!(actor = %self.name, error = %e, "message not sent");
                Ok(())
            }
        }
    }

    /// Sends `msg` if the actor is running; a message for an actor that
    /// is not is of no use later (a live update, a notice).
    pub fn notify(&self, msg: M) {
        let _ = self.cast(msg);
    }

    /// Spawns `actor` here, linked to `supervisor`: from now on this
    /// address is the new incarnation.
    pub async fn spawn_linked<A>(
        &self,
        actor: A,
        args: A::Arguments,
        supervisor: ActorCell,
    ) -> Result<ActorCell, SpawnErr>
    where
        A: Actor<Msg = M>,
    {
        let (spawned, _) =
            Actor::spawn_linked(Some(self.name.to_string()), actor, args, supervisor).await?;
        self.bind(spawned.clone());
        Ok(spawned.get_cell())
    }

    fn bind(&self, actor: ActorRef<M>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    #[derive(Debug)]
    enum EchoMsg {
        Ping(ractor::RpcReplyPort<u32>),
        Fail,
    }

    impl Actor for Echo {
        type Msg = EchoMsg;
        type State = u32;
        type Arguments = u32;

        async fn pre_start(
            &self,
            _: ActorRef<EchoMsg>,
            incarnation: u32,
        ) -> Result<u32, ractor::ActorProcessingErr> {
            Ok(incarnation)
        }

        async fn handle(
            &self,
            _: ActorRef<EchoMsg>,
            msg: EchoMsg,
            incarnation: &mut u32,
        ) -> Result<(), ractor::ActorProcessingErr> {
            match msg {
                EchoMsg::Ping(reply) => {
                    let _ = reply.send(*incarnation);
                    Ok(())
                }
                EchoMsg::Fail => Err("asked to fail".into()),
            }
        }
    }

    async fn ping(address: &Address<EchoMsg>) -> Option<u32> {
        let actor = address.get()?;
        ractor::call!(actor, EchoMsg::Ping).ok()
    }

    /// An address follows its actor across a failure and a new spawn:
    /// messages sent while none runs come back to the sender.
    #[tokio::test]
    async fn an_address_follows_its_actor_across_restarts() {
        let address = Address::<EchoMsg>::new("address-test.echo");
        assert!(address.get().is_none());
        assert!(matches!(address.cast(EchoMsg::Fail), Err(EchoMsg::Fail)));

        let (first, handle) = Actor::spawn(Some(address.name().to_owned()), Echo, 1)
            .await
            .unwrap();
        address.bind(first);
        assert_eq!(ping(&address).await, Some(1));

        address.cast(EchoMsg::Fail).unwrap();
        handle.await.unwrap();
        assert!(address.get().is_none());
        assert!(matches!(address.cast(EchoMsg::Fail), Err(EchoMsg::Fail)));

        let (second, handle) = Actor::spawn(Some(address.name().to_owned()), Echo, 2)
            .await
            .unwrap();
        address.bind(second);
        let clone = address.clone();
        assert_eq!(ping(&clone).await, Some(2));
        clone.get().unwrap().stop(None);
        handle.await.unwrap();
    }
}
