//! One notifier's waiting messages, by priority.
//!
//! Critical messages (emergency stop, HALTED, a protection tripped, a venue
//! ban…) are taken before anything else and never dropped: when the queue is
//! full, the oldest ordinary message makes room for them. Messages of a
//! coalescing group (fills, venue rejections) join the group's newest waiting
//! message, so a burst of fills becomes a few messages listing several fills
//! each, instead of one message per fill waiting out the send interval.

use std::collections::VecDeque;

use crate::notice::Notice;

/// How a message is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Jumps every queue and is never dropped.
    Critical,
    /// In arrival order; dropped when the queue is full.
    Normal,
    /// Joins the newest waiting message of the same group (the group's name
    /// in plural, e.g. `fills`, heads a message listing several).
    Coalesced(&'static str),
}

/// Lines one coalesced message lists at most (keeps one message readable, and short of Telegram's 4096 characters).
const MAX_LINES: usize = 15;

/// One waiting message: a single notice, or several of one group.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    group: Option<&'static str>,
    lines: Vec<Notice>,
}

impl Entry {
    fn notice(self) -> Notice {
        match self.group {
            Some(group) => Notice::merge(group, self.lines),
            None => Notice::merge("", self.lines),
        }
    }
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Queued (or joined a waiting message).
    Queued,
    /// The queue was full of ordinary messages: this one was dropped.
    Dropped,
    /// A critical message took the place of the oldest ordinary one, whose
    /// text (shortened) is given.
    Displaced(String),
}

/// The waiting messages of one notifier.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    critical: VecDeque<Notice>,
    normal: VecDeque<Entry>,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` messages (critical ones beyond it).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), critical: VecDeque::new(), normal: VecDeque::new() }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.critical.len() + self.normal.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `notice` (a plain `&str` reads as one) with `priority`.
    pub fn push(&mut self, notice: impl Into<Notice>, priority: Priority) -> Pushed {
        let notice = notice.into();
        match priority {
            Priority::Critical => {
                self.critical.push_back(notice);
                if self.len() > self.capacity {
                    if let Some(old) = self.normal.pop_front() {
                        return Pushed::Displaced(crate::notify::truncate(&old.notice().text, 80));
                    }
                }
                Pushed::Queued
            }
            Priority::Coalesced(group) => {
                let joinable =
                    self.normal.iter_mut().rev().find(|e| e.group == Some(group)).filter(|e| e.lines.len() < MAX_LINES);
                if let Some(entry) = joinable {
                    entry.lines.push(notice);
                    return Pushed::Queued;
                }
                self.push_normal(Entry { group: Some(group), lines: vec![notice] })
            }
            Priority::Normal => self.push_normal(Entry { group: None, lines: vec![notice] }),
        }
    }

    fn push_normal(&mut self, entry: Entry) -> Pushed {
        if self.len() >= self.capacity {
            return Pushed::Dropped;
        }
        self.normal.push_back(entry);
        Pushed::Queued
    }

    /// The next message to send: critical ones first, then the rest in order.
    pub fn pop(&mut self) -> Option<(Notice, Priority)> {
        if let Some(notice) = self.critical.pop_front() {
            return Some((notice, Priority::Critical));
        }
        self.normal.pop_front().map(|e| {
            let priority = e.group.map(Priority::Coalesced).unwrap_or(Priority::Normal);
            (e.notice(), priority)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(o: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| o.pop().map(|(n, _)| n.text)).collect()
    }

    #[test]
    fn critical_messages_jump_the_queue_and_displace_the_oldest_ordinary_one() {
        let mut o = Outbox::new(3);
        assert_eq!(o.push("a", Priority::Normal), Pushed::Queued);
        assert_eq!(o.push("b", Priority::Normal), Pushed::Queued);
        assert_eq!(o.push("c", Priority::Normal), Pushed::Queued);
        assert_eq!(o.push("d", Priority::Normal), Pushed::Dropped);
        assert_eq!(o.push("STOP", Priority::Critical), Pushed::Displaced("a".into()));
        assert_eq!(o.push("HALTED", Priority::Critical), Pushed::Displaced("b".into()));
        assert_eq!(o.push("BANNED", Priority::Critical), Pushed::Displaced("c".into()));
        // Nothing ordinary left to displace: a critical message is still kept.
        assert_eq!(o.push("FAIL CLOSED", Priority::Critical), Pushed::Queued);
        assert_eq!(o.push("e", Priority::Normal), Pushed::Dropped);
        assert_eq!(drain(&mut o), ["STOP", "HALTED", "BANNED", "FAIL CLOSED"]);
    }

    #[test]
    fn a_full_queue_of_critical_messages_never_drops_one() {
        let mut o = Outbox::new(2);
        for i in 0..10 {
            assert_eq!(o.push(format!("stop {i}").as_str(), Priority::Critical), Pushed::Queued);
        }
        assert_eq!(drain(&mut o).len(), 10);
    }

    #[test]
    fn fills_coalesce_into_messages_listing_several() {
        let mut o = Outbox::new(10);
        o.push("started", Priority::Normal);
        for i in 0..20 {
            o.push(format!("Fill {i}").as_str(), Priority::Coalesced("fills"));
        }
        o.push("Rejected 1", Priority::Coalesced("order rejections"));
        o.push("STOP", Priority::Critical);
        let sent = drain(&mut o);
        assert_eq!(sent.len(), 5, "{sent:?}");
        assert_eq!(sent[0], "STOP");
        assert_eq!(sent[1], "started");
        assert!(sent[2].starts_with("15 fills:\nFill 0\n") && sent[2].ends_with("Fill 14"), "{}", sent[2]);
        assert!(sent[3].starts_with("5 fills:\nFill 15\n"), "{}", sent[3]);
        // A lone message of a group reads as it was written.
        assert_eq!(sent[4], "Rejected 1");
    }
}
