//! How actors hand messages to each other on the order path: never silently.
//!
//! actix's `do_send` ignores a mailbox's capacity, and a send to a stopped
//! actor vanishes. Every send here goes through one of two functions, which
//! make both cases visible:
//!
//! * [`must`] — approved orders, fills, order reports and updates, balances:
//!   never dropped. A full mailbox (a consumer far behind) still takes the
//!   message, beyond its bound, and `keel_mailbox_overflow_total{actor}` counts
//!   it; back-pressure would deadlock the router and the risk guard, which send
//!   to each other. A stopped actor is an error in the log and in
//!   `keel_messages_dropped_total{actor}` (the supervisor reports the actor gone).
//! * [`may_drop`] — messages the next one supersedes (an equity mark): a full
//!   mailbox drops it and counts it in `keel_messages_dropped_total{actor}`.

use actix::prelude::*;

use crate::metrics::metrics;

/// Delivers `msg` to `to` (named `actor` in logs and metrics), beyond the
/// mailbox bound if it must; counts an overflow, reports a stopped actor.
pub fn must<M>(to: &Recipient<M>, msg: M, actor: &'static str)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    match to.try_send(msg) {
        Ok(()) => {}
        Err(SendError::Full(msg)) => {
            metrics().mailbox_overflow_total.with_label_values(&[actor]).inc();
            to.do_send(msg);
        }
        Err(SendError::Closed(_)) => {
            metrics().messages_dropped_total.with_label_values(&[actor]).inc();
            tracing::error!(
                actor,
                message = std::any::type_name::<M>(),
                "message not delivered: the actor has stopped"
            );
        }
    }
}

/// Delivers `msg` to `to` if its mailbox has room; otherwise drops it and
/// counts the drop. Only for messages a later one supersedes.
pub fn may_drop<M>(to: &Recipient<M>, msg: M, actor: &'static str)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    if to.try_send(msg).is_err() {
        metrics().messages_dropped_total.with_label_values(&[actor]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Ping;

    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Count;

    struct Sink(usize);

    /// Runs only when the test yields; its mailbox has actix's default bound (16).
    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Ping> for Sink {
        type Result = ();
        fn handle(&mut self, _: Ping, _: &mut Self::Context) {
            self.0 += 1;
        }
    }

    impl Handler<Count> for Sink {
        type Result = usize;
        fn handle(&mut self, _: Count, _: &mut Self::Context) -> usize {
            self.0
        }
    }

    #[actix_rt::test]
    async fn a_full_mailbox_still_gets_what_must_arrive_and_says_so() {
        let overflow = || metrics().mailbox_overflow_total.with_label_values(&["deliver_test_full"]).get();
        let before = overflow();
        let addr = Sink(0).start();
        let to = addr.clone().recipient::<Ping>();
        // The actor cannot run before this test yields, so its mailbox fills.
        for _ in 0..40 {
            must(&to, Ping, "deliver_test_full");
        }
        assert!(overflow() > before, "sends beyond the bound are counted");
        assert_eq!(addr.send(Count).await.unwrap(), 40, "every message arrived, in spite of the bound");
    }

    #[actix_rt::test]
    async fn droppable_and_undeliverable_messages_are_counted() {
        let dropped = |actor| metrics().messages_dropped_total.with_label_values(&[actor]).get();
        let addr = Sink(0).start();
        let to = addr.clone().recipient::<Ping>();
        let before = dropped("deliver_test_drop");
        for _ in 0..40 {
            may_drop(&to, Ping, "deliver_test_drop");
        }
        assert!(dropped("deliver_test_drop") > before, "superseded messages to a full mailbox are dropped, counted");
        let delivered = addr.send(Count).await.unwrap();
        assert!((1..40).contains(&delivered), "{delivered} delivered");

        // A stopped actor: the message is lost, and that is counted.
        let gone = Sink(0).start();
        let to_gone = gone.clone().recipient::<Ping>();
        let arbiter_stop = gone.send(Stop).await;
        assert!(arbiter_stop.is_ok());
        actix_rt::task::yield_now().await;
        let before = dropped("deliver_test_gone");
        must(&to_gone, Ping, "deliver_test_gone");
        assert_eq!(dropped("deliver_test_gone"), before + 1);
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Stop> for Sink {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
            ctx.stop();
        }
    }
}
